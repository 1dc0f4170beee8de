// The `sparks` command (`npx sparks`): what Pulumi itself does not do for a Sparks stack.
//   sparks verify --stack S [--json]   every check, live; a table of all results; exit 1 on any failure
//   sparks status --stack S [--json]   hosts and databases as they are now
//   sparks skills list|show|new|validate|sync   the skills repo (cli/skills.ts)
// They read the stack's outputs and config through the Pulumi CLI (toolchain/env.sh sets it up)
// and reach the hosts as the deployment does (cli/hostAccess.ts).
import { execFileSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { Command, InvalidArgumentError } from "commander";
import { contentHash } from "../components/sparksHost";
import { hostAccess } from "./hostAccess";
import { hostTool, listSkills, repoUrl, showSkill, SkillsOutputs, syncContainers } from "./skills";
import { stackStatus } from "./status";
import { CheckResult, HostChecks, StackOutputs, verifyStack } from "./verify";

/** The project a `sparks` command works on: the current directory, as for `pulumi`. */
const PROJECT_DIR = process.cwd();

/** A stack name as Pulumi allows it, before it reaches a command line. */
function stackName(value: string): string {
    if (!/^[A-Za-z0-9_.-]{1,100}$/.test(value)) throw new InvalidArgumentError(`"${value}" is not a stack name`);
    return value;
}

function stackOutputs(stack: string): StackOutputs {
    return JSON.parse(execFileSync("pulumi", ["stack", "output", "--json", "--show-secrets", "--stack", stack],
        { cwd: PROJECT_DIR, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] }));
}

/** Runs `use` with access to the stack's hosts, closed afterwards. */
async function withHosts<T>(stack: string, outputs: StackOutputs, use: (checks: HostChecks) => Promise<T>): Promise<T> {
    const pinned = Object.fromEntries(Object.entries(outputs.hosts ?? {}).map(([name, host]) => [name, host.hostKey]));
    const access = await hostAccess(stack, PROJECT_DIR, pinned);
    const project = /^name:\s*(\S+)/m.exec(fs.readFileSync(path.join(PROJECT_DIR, "Pulumi.yaml"), "utf8"))![1];
    try {
        return await use({ run: access.run, ownerPrefix: `${project}/${stack}/`, toolsHash: contentHash(path.join(PROJECT_DIR, "host")) });
    } finally {
        access.close();
    }
}

/** Rows as a left-aligned text table under a header. */
export function table(header: string[], rows: string[][]): string {
    const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
    return [header, ...rows].map((row) => row.map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i]))).join("  ")).join("\n");
}

function verifyReport(results: CheckResult[]): string {
    const failed = results.filter((r) => !r.ok).length;
    const rows = results.map((r) => [r.check, r.target, r.ok ? "ok" : "FAILED", `${(r.ms / 1000).toFixed(1)}s`, r.detail]);
    return `${table(["CHECK", "TARGET", "RESULT", "TIME", "DETAIL"], rows)}\n\n${results.length} checks, ${failed} failed`;
}

export function program(): Command {
    const sparks = new Command("sparks").description("Verify and inspect a deployed Sparks stack (deploy with pulumi up)");
    sparks.command("verify")
        .description("re-run every check live: hosts (pool, tools, KVM, TLS, units, dev containers), orphans, and every database, Postgres and Redis (own password, TLS, lineage, divergence)")
        .requiredOption("-s, --stack <stack>", "the stack to verify", stackName)
        .option("--json", "print the results as JSON")
        .action(async (opts: { stack: string; json?: boolean }) => {
            const outputs = stackOutputs(opts.stack);
            const results = await withHosts(opts.stack, outputs, (checks) => verifyStack(outputs, checks));
            console.log(opts.json ? JSON.stringify(results, null, 2) : verifyReport(results));
            if (results.length === 0 || results.some((r) => !r.ok)) process.exitCode = 1;
        });
    sparks.command("status")
        .description("show each host (reachable, tools, pool) and database (state, port, source, who manages it), live")
        .requiredOption("-s, --stack <stack>", "the stack to show", stackName)
        .option("--json", "print the status as JSON")
        .action(async (opts: { stack: string; json?: boolean }) => {
            const outputs = stackOutputs(opts.stack);
            const status = await withHosts(opts.stack, outputs, (checks) => stackStatus(outputs, checks));
            if (opts.json) {
                console.log(JSON.stringify(status, null, 2));
                return;
            }
            console.log(table(["HOST", "REACHABLE", "TOOLS", "POOL USED/SIZE (FREE)"], status.hosts.map((h) => [
                h.host, h.reachable ? "yes" : `no: ${h.error}`,
                h.tools === undefined ? "-" : `${h.tools}${h.toolsCurrent ? "" : " (not this checkout's: run pulumi up)"}`,
                h.pool === undefined ? "-" : `${h.pool.used}/${h.pool.size} (${h.pool.available})`,
            ])));
            console.log();
            console.log(table(["DATABASE", "TOOL", "HOST", "STATE", "PORT", "SOURCE", "MANAGED BY"], status.databases.map((d) => [
                d.name, d.tool, d.host, d.state, String(d.port ?? "-"), d.source ?? "-",
                { stack: "this stack", orphan: "ORPHAN (this stack made it, no longer manages it)", other: "another stack", hand: "hand" }[d.managedBy],
            ])));
        });
    sparks.addCommand(skillsProgram());
    return sparks;
}

function skillsProgram(): Command {
    const skills = new Command("skills").description("The team's skills repo: list and show what main holds, start and check skills, sync dev containers");
    const where = (cmd: Command) => cmd
        .option("-s, --stack <stack>", "the stack whose skills repo to read", stackName)
        .option("--url <url>", "the repo's clone URL (http://HOST:PORT/skills.git) instead of a stack's");
    const urlOf = (opts: { stack?: string; url?: string }) => {
        if (opts.url === undefined && opts.stack === undefined) throw new InvalidArgumentError("give --stack STACK or --url URL");
        return repoUrl(opts.url, opts.url === undefined ? stackOutputs(opts.stack!) as SkillsOutputs : undefined);
    };
    where(skills.command("list").description("list the skills on main: name and description"))
        .option("--json", "print them as JSON")
        .action(async (opts: { stack?: string; url?: string; json?: boolean }) => {
            const listed = await listSkills(urlOf(opts));
            if (opts.json) {
                console.log(JSON.stringify(listed, null, 2));
                return;
            }
            console.log(table(["SKILL", "DESCRIPTION"], listed.skills.map((s) => [s.name, s.description.replace(/\s+/g, " ")])));
            if (listed.problems.length > 0) console.log(`\nnot listed (they break the format): ${listed.problems.join("; ")}`);
        });
    where(skills.command("show").description("print a skill's SKILL.md as it is on main").argument("<name>", "the skill"))
        .action(async (name: string, opts: { stack?: string; url?: string }) => {
            process.stdout.write(await showSkill(urlOf(opts), name));
        });
    skills.command("new").description("make NAME/SKILL.md with valid front matter, to fill in").argument("<name>", "the skill's name (its folder's)")
        .option("--dir <dir>", "where to make it (default: here)", ".")
        .action((name: string, opts: { dir: string }) => {
            const made = hostTool(["new", name, "--dir", opts.dir]);
            process.stdout.write(made.output);
            process.exitCode = made.status;
        });
    skills.command("validate").description("check skills as the repo's hook will: a repo's top-level folders, or one skill's folder")
        .argument("[dir]", "the repo or skill folder", ".")
        .option("--json", "print {skills, problems} as JSON")
        .action((dir: string, opts: { json?: boolean }) => {
            const checked = hostTool(["validate", dir, ...(opts.json ? ["--json"] : [])]);
            process.stdout.write(checked.output);
            process.exitCode = checked.status;
        });
    skills.command("sync").description("sync each dev container's ~/skills now (all that have a skills repo, or those named)")
        .argument("[containers...]", "dev containers to sync")
        .requiredOption("-s, --stack <stack>", "the stack of the containers", stackName)
        .option("--json", "print the results as JSON")
        .action(async (containers: string[], opts: { stack: string; json?: boolean }) => {
            const outputs = stackOutputs(opts.stack);
            const results = await withHosts(opts.stack, outputs, (checks) => syncContainers(outputs as SkillsOutputs, containers, checks.run));
            if (opts.json) console.log(JSON.stringify(results, null, 2));
            else {
                console.log(table(["CONTAINER", "HOST", "RESULT", "~/skills"], results.map((r) => [r.name, r.host, r.ok ? "synced" : "FAILED",
                    r.ok ? `HEAD ${r.head!.slice(0, 12)}; origin ${Object.entries(r.origin!).map(([b, c]) => `${b} ${c.slice(0, 12)}`).join(", ")}` : r.error!])));
            }
            if (results.some((r) => !r.ok)) process.exitCode = 1;
        });
    return skills;
}

export async function main(argv: string[]): Promise<void> {
    try {
        await program().parseAsync(argv);
    } catch (error) {
        // Secrets never reach these messages: the URIs stay inside verify.
        console.error(`sparks: ${(error as Error).message}`);
        process.exitCode = 1;
    }
}
