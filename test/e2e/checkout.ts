// A copy of the checkout, run as a person runs it: its own .state and .lab, the lab passphrase
// toolchain/env.sh sets, `pulumi ... --stack dev`, `sparks`, and ssh to its lab hosts with their
// recorded keys. The pathway suites (deploy-dev, dev containers) each work in one.
import { execFileSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import * as YAML from "yaml";
import { LabHost, sshArgs, writeKnownHosts } from "../lab/labClient";
import { mustSucceed, ROOT, run, RunResult } from "./stack";

const LONG = 15 * 60 * 1000;

export class CheckoutCopy {
    /** Every output this copy's commands printed: none may hold a secret. */
    readonly seen: string[] = [];
    readonly env: NodeJS.ProcessEnv;

    /** Copies the tracked files of the checkout (node_modules shared) into a new directory. */
    constructor(readonly dir = fs.mkdtempSync(path.join(os.tmpdir(), "sparks-checkout-"))) {
        const files = execFileSync("git", ["ls-files", "-z"], { cwd: ROOT, encoding: "utf8" }).split("\0").filter(Boolean);
        for (const file of files) fs.cpSync(path.join(ROOT, file), path.join(dir, file), { recursive: true });
        fs.symlinkSync(path.join(ROOT, "node_modules"), path.join(dir, "node_modules"));
        // As on a fresh shell: env.sh picks the copy's own backend and the lab passphrase.
        this.env = { ...process.env };
        for (const name of ["PULUMI_BACKEND_URL", "PULUMI_CONFIG_PASSPHRASE", "PULUMI_CONFIG_PASSPHRASE_FILE", "SPARKS_LAB_DIR"]) delete this.env[name];
    }

    private record(result: RunResult): RunResult {
        this.seen.push(result.stdout, result.stderr);
        return result;
    }

    /** Runs one of the copy's own files (scripts/setup, lab/sparks-lab, ...). */
    async file(file: string, args: string[] = []): Promise<RunResult> {
        return this.record(await run(path.join(this.dir, file), args, { cwd: this.dir, env: this.env, timeoutMs: LONG }));
    }

    /** A bash script after `source toolchain/env.sh`, with ARGS as $1... */
    async shell(script: string, ...args: string[]): Promise<RunResult> {
        return this.record(await run("bash", ["-c", `source toolchain/env.sh && ${script}`, "bash", ...args], { cwd: this.dir, env: this.env, timeoutMs: LONG }));
    }

    pulumi(...args: string[]): Promise<RunResult> { return this.shell('exec pulumi "$@" --stack dev --non-interactive', ...args); }
    up(...extra: string[]): Promise<RunResult> { return this.pulumi("up", "--yes", "--skip-preview", ...extra); }
    /** `npx sparks ARGS`, as users run it; npm's own warnings (a machine's npmrc) are not sparks' output. */
    async sparks(...args: string[]): Promise<RunResult> {
        const result = await this.shell('exec npx sparks "$@"', ...args);
        return { ...result, stderr: result.stderr.replace(/^npm warn .*\n/gm, "") };
    }

    async labHosts(): Promise<LabHost[]> {
        return JSON.parse(mustSucceed("lab status", await this.file("lab/sparks-lab", ["status", "--json"])).stdout);
    }

    /** A command on lab host NAME as root, over ssh with its recorded host key; never throws. */
    async onHostResult(name: string, command: string, input?: string): Promise<RunResult> {
        const host = (await this.labHosts()).find((h) => h.name === name)!;
        const knownHosts = path.join(this.dir, `.known_hosts.${name}`);
        writeKnownHosts(knownHosts, [host]);
        return run("ssh", sshArgs(host, knownHosts, command), { input, timeoutMs: LONG });
    }

    /** As onHostResult, but throws unless it exits 0; returns its stdout. */
    async onHost(name: string, command: string, input?: string): Promise<string> {
        return mustSucceed(`on ${name}: ${command}`, await this.onHostResult(name, command, input)).stdout;
    }

    /** The URNs of every resource in the dev stack, sorted. */
    async resources(): Promise<string[]> {
        return JSON.parse(mustSucceed("stack export", await this.pulumi("stack", "export")).stdout)
            .deployment.resources.map((r: { urn: string }) => r.urn).sort();
    }

    /** `sparks verify --stack dev` must pass every check; returns its table. */
    async verifyGreen(): Promise<string> {
        const verify = mustSucceed("sparks verify", await this.sparks("verify", "--stack", "dev"));
        expect(verify.stdout).toMatch(/\n\n\d+ checks, 0 failed\n$/);
        return verify.stdout;
    }

    /** Edits Pulumi.dev.yaml's config as a person would: comments and key order stay. */
    editConfig(edit: (config: Record<string, any>) => void): void {
        const file = path.join(this.dir, "Pulumi.dev.yaml");
        const doc = YAML.parseDocument(fs.readFileSync(file, "utf8"));
        const config = doc.get("config") as YAML.YAMLMap;
        const plain = config.toJSON();
        edit(plain);
        for (const [key, value] of Object.entries(plain)) config.set(key, value);
        for (const key of Object.keys(config.toJSON())) if (!(key in plain)) config.delete(key);
        fs.writeFileSync(file, doc.toString());
    }

    /** Destroys the dev stack if it was ever made, takes the lab down and removes the copy. */
    async remove(): Promise<void> {
        if (fs.existsSync(path.join(this.dir, ".state", ".pulumi"))) await this.pulumi("destroy", "--yes", "--skip-preview");
        await this.file("lab/sparks-lab", ["down"]);
        fs.rmSync(this.dir, { recursive: true, force: true });
    }
}
