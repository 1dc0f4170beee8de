// `sparks skills ...`: the team's skills repo from a workstation or a dev container.
//   list / show NAME   what main holds, from the repo's web server (/skills.json, /skills/NAME)
//   new NAME / validate [DIR]   the host tool's own verbs, run here (host/bin/spark-skills): the
//                      same rules as the server's hook, from the same code
//   sync [NAME...]     each dev container's skills sync, now (spark-dev skills-sync on its host)
import { execFileSync } from "child_process";
import * as path from "path";
import { DEV_CONTAINER_NAME_PATTERN } from "../components/configSchema";
import { HostRunner } from "./hostAccess";

/** The host tool in this checkout: `new` and `validate` need no host. */
export const SPARK_SKILLS = path.join(__dirname, "..", "host", "bin", "spark-skills");

export interface SkillsOutputs {
    skillsRepo?: { url: string; pushUrl: string; host: string; head: string | null } | null;
    devContainers?: Record<string, { host?: string; skills_url?: string | null }>;
}

export interface Skill {
    name: string;
    description: string;
    license?: string;
    compatibility?: string;
    metadata?: Record<string, string>;
    "allowed-tools"?: string;
}

/** The web server's root for a clone URL (http://HOST:PORT/skills.git). */
export function serverOf(url: string): string {
    if (!/^https?:\/\/[^/]+\/skills\.git$/.test(url)) throw new Error(`"${url}" is not a skills repo URL (http://HOST:PORT/skills.git)`);
    return url.slice(0, -"/skills.git".length);
}

/** The clone URL from --url, or the stack's output. */
export function repoUrl(url: string | undefined, outputs: SkillsOutputs | undefined): string {
    if (url !== undefined) return url;
    const repo = outputs?.skillsRepo;
    if (repo === undefined || repo === null) throw new Error("the stack has no skills repo (sparks:skillsRepo in its config, then pulumi up)");
    return repo.url;
}

async function get(url: string): Promise<Response> {
    try {
        return await fetch(url, { signal: AbortSignal.timeout(10_000) });
    } catch (error) {
        const cause = (error as Error).cause as Error | undefined;
        throw new Error(`cannot reach ${url}: ${cause?.message ?? (error as Error).message}`);
    }
}

export async function listSkills(url: string): Promise<{ head: string | null; skills: Skill[]; problems: string[] }> {
    const response = await get(`${serverOf(url)}/skills.json`);
    if (!response.ok) throw new Error(`${serverOf(url)}/skills.json answered ${response.status}`);
    return (await response.json()) as { head: string | null; skills: Skill[]; problems: string[] };
}

export async function showSkill(url: string, name: string): Promise<string> {
    if (!/^[a-z0-9-]{1,64}$/.test(name)) throw new Error(`"${name}" is not a skill name (a-z, 0-9 and '-', at most 64)`);
    const response = await get(`${serverOf(url)}/skills/${name}`);
    if (response.status === 404) throw new Error(`no skill "${name}" on main of ${url}`);
    if (!response.ok) throw new Error(`${serverOf(url)}/skills/${name} answered ${response.status}`);
    return response.text();
}

/** Runs the host tool's verb here; its output as it prints it, and its exit status. */
export function hostTool(args: string[]): { status: number; output: string } {
    try {
        return { status: 0, output: execFileSync(SPARK_SKILLS, args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] }) };
    } catch (error) {
        const e = error as { status?: number; stdout?: string; stderr?: string; code?: string };
        if (e.code === "ENOENT" || e.code === "EACCES") throw new Error(`cannot run ${SPARK_SKILLS}`);
        const stderr = e.stderr ?? "";
        if (/No module named 'yaml'/.test(stderr)) {
            throw new Error("spark-skills validate needs python3 with PyYAML (Debian: apt install python3-yaml)");
        }
        return { status: e.status ?? 1, output: `${e.stdout ?? ""}${stderr}` };
    }
}

export interface SyncResult {
    name: string;
    host: string;
    ok: boolean;
    head?: string;
    origin?: Record<string, string>;
    error?: string;
}

/** Syncs the named dev containers (all with a skills repo when none is named), one host command each. */
export async function syncContainers(outputs: SkillsOutputs, names: string[], run: HostRunner): Promise<SyncResult[]> {
    const containers = Object.entries(outputs.devContainers ?? {});
    const unknown = names.filter((name) => !containers.some(([n]) => n === name));
    if (unknown.length > 0) throw new Error(`no dev container ${unknown.map((n) => `"${n}"`).join(", ")} in the stack`);
    const chosen = containers.filter(([name, c]) => (names.length > 0 ? names.includes(name) : Boolean(c.skills_url)));
    if (chosen.length === 0) throw new Error("no dev container of the stack has a skills repo to sync with");
    const results: SyncResult[] = [];
    for (const [name, container] of chosen) {
        const host = container.host ?? "";
        try {
            // NAME comes from the stack's outputs, which config validated (a-z, 0-9, '-').
            if (!DEV_CONTAINER_NAME_PATTERN.test(name)) throw new Error(`"${name}" is not a dev container name`);
            const synced = JSON.parse(await run(host, `spark-dev skills-sync ${name} --json`)) as { head: string; origin: Record<string, string> };
            results.push({ name, host, ok: true, head: synced.head, origin: synced.origin });
        } catch (error) {
            results.push({ name, host, ok: false, error: (error as Error).message.trim() });
        }
    }
    return results;
}
