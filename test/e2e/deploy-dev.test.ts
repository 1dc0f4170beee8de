// The README's main job, as a person runs it: scripts/deploy-dev in a copy of the checkout (its
// own .state and .lab, the lab passphrase env.sh sets) brings up the lab, deploys the dev stack
// and verifies it. A lab host that then stops (powers off) is the same machine: deploy-dev starts it
// again and keeps everything the stack recorded, instead of forgetting the whole stack.
import { execFileSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { mustSucceed, ROOT, run, RunResult } from "./stack";

jest.setTimeout(20 * 60 * 1000);

describe("scripts/deploy-dev", () => {
    let copy: string;
    let env: NodeJS.ProcessEnv;

    const inCopy = (file: string, args: string[] = []): Promise<RunResult> =>
        run(path.join(copy, file), args, { cwd: copy, env, timeoutMs: 15 * 60 * 1000 });
    const pulumi = (args: string[]) => run("bash", ["-c", 'source toolchain/env.sh && exec pulumi "$@"', "pulumi", ...args], { cwd: copy, env });
    const resources = async () => JSON.parse(mustSucceed("stack export", await pulumi(["stack", "export", "--stack", "dev"])).stdout)
        .deployment.resources.map((r: { urn: string }) => r.urn).sort();

    beforeAll(() => {
        copy = fs.mkdtempSync(path.join(os.tmpdir(), "sparks-deploy-dev-"));
        const files = execFileSync("git", ["ls-files", "-z"], { cwd: ROOT, encoding: "utf8" }).split("\0").filter(Boolean);
        for (const file of files) fs.cpSync(path.join(ROOT, file), path.join(copy, file), { recursive: true });
        fs.symlinkSync(path.join(ROOT, "node_modules"), path.join(copy, "node_modules"));
        // As on a fresh shell: env.sh picks the copy's own backend and the lab passphrase.
        env = { ...process.env };
        for (const name of ["PULUMI_BACKEND_URL", "PULUMI_CONFIG_PASSPHRASE", "PULUMI_CONFIG_PASSPHRASE_FILE", "SPARKS_LAB_DIR"]) delete env[name];
    });

    afterAll(async () => {
        if (fs.existsSync(path.join(copy, ".state", ".pulumi"))) await pulumi(["destroy", "--yes", "--skip-preview", "--non-interactive", "--stack", "dev"]);
        await inCopy("lab/sparks-lab", ["down"]);
        fs.rmSync(copy, { recursive: true, force: true });
    });

    test("deploys the dev stack to the lab and verifies it", async () => {
        const first = mustSucceed("deploy-dev", await inCopy("scripts/deploy-dev"));
        expect(first.stdout).toMatch(/verify: ok: postgres app-review: .*holds the data of app <- app-review/);
        expect(first.stdout).toContain("verify: ok: host spark-1: no orphan databases");
    });

    test("a lab host that stopped is started again as the same machine, and the stack keeps its state", async () => {
        const before = await resources();
        await inCopy("lab/sparks-lab", ["ssh", "spark-2", "systemctl", "poweroff", "--no-block"]);
        for (const deadline = Date.now() + 60_000; ;) {
            const status = JSON.parse(mustSucceed("status", await inCopy("lab/sparks-lab", ["status", "--json"])).stdout) as { name: string; state: string }[];
            if (status.find((h) => h.name === "spark-2")?.state === "stopped") break;
            if (Date.now() > deadline) throw new Error("spark-2 did not stop within 60 s of poweroff");
            await new Promise((r) => setTimeout(r, 200));
        }
        const again = mustSucceed("deploy-dev", await inCopy("scripts/deploy-dev"));
        expect(again.stderr).not.toContain("forgets");
        expect(again.stderr).toContain("sparks-lab: spark-2 started");
        expect(again.stdout).toMatch(/verify: ok: postgres app-review: /);
        expect(await resources()).toEqual(before);
    });
});
