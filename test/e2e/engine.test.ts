// The real Pulumi engine runs this program offline: a stack with no hosts goes through the whole
// lifecycle, prod previews without contacting anything, and a bad config fails before any change.
import * as fs from "fs";
import * as path from "path";
import * as YAML from "yaml";
import { ROOT, TestStack } from "./stack";

jest.setTimeout(10 * 60 * 1000);

const stackFileConfig = (stack: string) => YAML.parse(fs.readFileSync(path.join(ROOT, `Pulumi.${stack}.yaml`), "utf8")).config;

describe("a stack with no hosts", () => {
    let stack: TestStack;
    beforeAll(async () => { stack = await TestStack.create("smoke", {}); });
    afterAll(async () => { await stack.remove(); });

    test("previews, deploys, shows no changes the second time, and destroys", async () => {
        const preview = await stack.preview();
        expect(preview.stderr).toBe("");
        expect(preview.code).toBe(0);
        expect((await stack.up()).code).toBe(0);
        const again = await stack.preview("--expect-no-changes");
        expect(again.code).toBe(0);
        expect((await stack.destroy()).code).toBe(0);
    });
});

/** Every process below `pid` now, by walking /proc's parent links. */
function descendants(pid: number): number[] {
    const parentOf = new Map<number, number>();
    for (const entry of fs.readdirSync("/proc")) {
        if (!/^\d+$/.test(entry)) continue;
        try {
            // The comm field may hold spaces: the parent PID is the second field after its ")".
            const stat = fs.readFileSync(`/proc/${entry}/stat`, "utf8");
            parentOf.set(Number(entry), Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]));
        } catch { /* exited meanwhile */ }
    }
    const below: number[] = [];
    const walk = (parent: number) => {
        for (const [child, p] of parentOf) if (p === parent) { below.push(child); walk(child); }
    };
    walk(pid);
    return below;
}

/** Whether `pid` still runs (a zombie has exited: it only waits for its parent to reap it). */
function running(pid: number): boolean {
    try {
        const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
        return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
    } catch {
        return false;
    }
}

const commandLine = (pid: number) => {
    try { return fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").join(" ").trim(); } catch { return ""; }
};

describe("pulumi killed with SIGKILL in the middle of an up", () => {
    test("leaves no plugin process (language host, node program, providers, commands) alive after 30 s", async () => {
        const stack = await TestStack.create("interrupted", {}, { program: path.join(__dirname, "programs", "interrupted") });
        try {
            const up = stack.start(["up", "--yes", "--skip-preview"]);
            const wanted = ["pulumi-language-nodejs", "pulumi-resource-command", "pulumi-resource-random", "sleep 600"];
            let plugins: number[] = [];
            for (const deadline = Date.now() + 120_000; Date.now() < deadline; await new Promise((r) => setTimeout(r, 200))) {
                plugins = descendants(up.pid!);
                const lines = plugins.map(commandLine);
                if (wanted.every((w) => lines.some((l) => l.includes(w)))) break;
            }
            expect(plugins.map(commandLine).join("\n")).toContain("sleep 600");
            process.kill(up.pid!, "SIGKILL");
            const killed = Date.now();
            let alive = plugins;
            while (alive.length > 0 && Date.now() - killed < 30_000) {
                await new Promise((r) => setTimeout(r, 250));
                alive = alive.filter(running);
            }
            console.log(`after SIGKILL of pulumi: ${plugins.length} plugin processes, all gone in ${((Date.now() - killed) / 1000).toFixed(1)} s`);
            expect(alive.map((pid) => `${pid} ${commandLine(pid)}`)).toEqual([]);
        } finally {
            await stack.remove();
        }
    });
});

describe("the public lab passphrase", () => {
    test("refuses a stack that is not a lab stack before anything runs, and admits a lab stack", async () => {
        const stack = await TestStack.create("borrowed", {}, { passphrase: "sparks-dev-lab" });
        try {
            const refused = await stack.preview();
            expect(refused.code).not.toBe(0);
            expect(refused.stdout + refused.stderr).toContain(
                "sparks:lab: is not set, but this stack's secrets are encrypted under the public lab passphrase");
            expect((await stack.up()).code).not.toBe(0);
            stack.setConfig({ "sparks:lab": { hosts: [] } });
            expect((await stack.preview()).code).toBe(0);
        } finally {
            await stack.remove();
        }
    });
});

describe("the prod stack file", () => {
    test("previews without network: previews never contact hosts", async () => {
        const stack = await TestStack.create("prod", stackFileConfig("prod"));
        try {
            const preview = await stack.preview();
            expect(preview.code).toBe(0);
            for (const host of ["spark-a", "spark-b"]) {
                expect(preview.stdout).toContain(`${host}-pool`);
            }
            expect(preview.stdout).toContain("app-staging");
        } finally {
            await stack.remove();
        }
    });
});

describe("a bad stack config", () => {
    test("fails the preview and the update with one line per problem, and changes nothing", async () => {
        const stack = await TestStack.create("bad", {});
        try {
            expect((await stack.up()).code).toBe(0);
            const resources = async () => JSON.parse((await stack.pulumi(["stack", "export"])).stdout).deployment.resources;
            const before = await resources();
            stack.setConfig({
                "sparks:ssh": { agent: true },
                "sparks:pool": { device: "/dev/vdb" },
                "sparks:hosts": [
                    { name: "spark;1", address: "10.89.42.11", port: 70000, hostKey: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA" },
                    { name: "spark-2", address: "10.89.42.12", port: "22", hostKey: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA" },
                    { name: "spark-2", address: "10.89.42.13", hostKey: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA" },
                ],
                "sparks:postgres": [{ name: "a/b", host: "spark-2" }],
                "sparks:colour": "blue",
            });
            const expected = [
                "invalid stack config, 6 problem(s):",
                'sparks:colour: unknown key',
                'sparks:hosts[0].name: "spark;1" is not a valid name',
                "sparks:hosts[0].port: 70000 is not a TCP port (1-65535)",
                'sparks:hosts[1].port: "22" is not a TCP port (1-65535)',
                'sparks:hosts[2].name: "spark-2" is already used by sparks:hosts[1].name',
                'sparks:postgres[0].name: "a/b" is not a valid name',
            ];
            for (const attempt of [await stack.preview(), await stack.up()]) {
                expect(attempt.code).not.toBe(0);
                const said = attempt.stdout + attempt.stderr;
                for (const line of expected) expect(said).toContain(line);
                expect(said).not.toMatch(/at \S+ \(.*\.ts:\d+/); // a message, not a stack trace
            }
            // A failed run records its attempt (the manifest's time), but no resource changes.
            expect(await resources()).toEqual(before);
            stack.setConfig({});
            expect((await stack.destroy()).code).toBe(0);
        } finally {
            await stack.remove();
        }
    });
});
