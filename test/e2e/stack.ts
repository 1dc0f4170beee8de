// A Pulumi stack in a throwaway copy of this project, driven through the real `pulumi` CLI, in the
// manner of Pulumi's own integration harness: its own file backend, its own stack file, and
// helpers for the lifecycle (preview, up, preview-no-changes, edit, destroy).
import { ChildProcess, execFile, spawn } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import * as YAML from "yaml";

export const ROOT = path.resolve(__dirname, "../..");
// What a Pulumi program needs from the project; node_modules is linked, not copied.
const PROGRAM_FILES = ["Pulumi.yaml", "index.ts", "package.json", "tsconfig.json", "tsconfig.pulumi.json", "components", "host"];

export interface RunResult {
    code: number;
    stdout: string;
    stderr: string;
}

/** Runs a command, never throwing: tests look at the exit code and output themselves. */
export function run(file: string, args: string[], options: { cwd?: string; env?: NodeJS.ProcessEnv; input?: string; timeoutMs?: number } = {}): Promise<RunResult> {
    return new Promise((resolve) => {
        const child = execFile(file, args, {
            cwd: options.cwd,
            env: options.env ?? process.env,
            maxBuffer: 64 * 1024 * 1024,
            timeout: options.timeoutMs ?? 20 * 60 * 1000,
        }, (error, stdout, stderr) => {
            const code = error ? (typeof error.code === "number" ? error.code : 1) : 0;
            resolve({ code, stdout, stderr });
        });
        if (options.input !== undefined) child.stdin?.end(options.input);
    });
}

/** Returns `result` if the command succeeded; else throws with its exit code and the tails of its output. */
export function mustSucceed(what: string, result: RunResult): RunResult {
    if (result.code !== 0) {
        throw new Error(`${what}: exit ${result.code}\n${result.stdout.slice(-4000)}\n${result.stderr.slice(-4000)}`);
    }
    return result;
}

export class TestStack {
    readonly dir: string;
    private readonly env: NodeJS.ProcessEnv;

    private constructor(readonly name: string, program?: string, passphrase = "sparks-e2e") {
        this.dir = fs.mkdtempSync(path.join(os.tmpdir(), "sparks-e2e-"));
        for (const file of PROGRAM_FILES) fs.cpSync(path.join(ROOT, file), path.join(this.dir, file), { recursive: true });
        // A test program replaces the project's entry point and keeps its components and settings.
        if (program !== undefined) fs.cpSync(program, this.dir, { recursive: true });
        fs.symlinkSync(path.join(ROOT, "node_modules"), path.join(this.dir, "node_modules"));
        fs.mkdirSync(path.join(this.dir, ".state"));
        this.env = {
            ...process.env,
            PULUMI_BACKEND_URL: `file://${path.join(this.dir, ".state")}`,
            PULUMI_CONFIG_PASSPHRASE: passphrase,
        };
        delete this.env.PULUMI_CONFIG_PASSPHRASE_FILE;
    }

    /** A new stack `name` whose config is `config` (full keys, e.g. "sparks:hosts"); `program`, a
     *  folder whose files (e.g. index.ts) replace the project's own in the copy; `passphrase`, the
     *  one its secrets are under (default: a test passphrase). */
    static async create(name: string, config: Record<string, unknown>, options: { program?: string; passphrase?: string } = {}): Promise<TestStack> {
        const stack = new TestStack(name, options.program, options.passphrase);
        stack.setConfig(config);
        mustSucceed("pulumi stack init", await stack.exec(["stack", "init", name, "--non-interactive"]));
        return stack;
    }

    /** Replaces the stack's config file, as a user editing Pulumi.<stack>.yaml would. */
    setConfig(config: Record<string, unknown>): void {
        const file = path.join(this.dir, `Pulumi.${this.name}.yaml`);
        const existing = fs.existsSync(file) ? YAML.parse(fs.readFileSync(file, "utf8")) ?? {} : {};
        fs.writeFileSync(file, YAML.stringify({ ...existing, config }));
    }

    /** `pulumi ARGS` on this stack. */
    pulumi(args: string[], timeoutMs?: number): Promise<RunResult> {
        return this.exec([...args, "--non-interactive", "--stack", this.name], timeoutMs);
    }

    /** Any command in the stack's copy of the project, with its backend and passphrase. */
    command(file: string, args: string[]): Promise<RunResult> {
        return run(file, args, { cwd: this.dir, env: this.env });
    }

    /** `pulumi ARGS` on this stack, started in the background (its output discarded). */
    start(args: string[]): ChildProcess {
        return spawn("pulumi", [...args, "--non-interactive", "--stack", this.name], { cwd: this.dir, env: this.env, stdio: "ignore" });
    }

    private exec(args: string[], timeoutMs?: number): Promise<RunResult> {
        return run("pulumi", args, { cwd: this.dir, env: this.env, timeoutMs });
    }

    preview(...extra: string[]) { return this.pulumi(["preview", "--diff", ...extra]); }
    up(...extra: string[]) { return this.pulumi(["up", "--yes", "--skip-preview", ...extra]); }
    destroy() { return this.pulumi(["destroy", "--yes", "--skip-preview"]); }

    /** The steps a preview would take, as [op, resource name] pairs (sames left out). */
    async plannedSteps(): Promise<[string, string][]> {
        const result = mustSucceed("pulumi preview --json", await this.pulumi(["preview", "--json"]));
        const steps: { op: string; urn: string }[] = JSON.parse(result.stdout).steps ?? [];
        return steps.filter((s) => s.op !== "same").map((s) => [s.op, s.urn.split("::").pop()!] as [string, string]).sort();
    }

    /** The stack's outputs, secrets shown (kept in memory, never logged). */
    async outputs(): Promise<Record<string, any>> {
        const result = mustSucceed("pulumi stack output", await this.pulumi(["stack", "output", "--json", "--show-secrets"]));
        return JSON.parse(result.stdout);
    }

    /** Removes the stack and the temp copy; the stack must be destroyed first. */
    async remove(): Promise<void> {
        await this.pulumi(["stack", "rm", "--yes", "--force"]);
        fs.rmSync(this.dir, { recursive: true, force: true });
    }
}
