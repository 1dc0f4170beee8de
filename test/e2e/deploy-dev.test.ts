// The one pathway, as a person runs it, in a copy of the checkout (its own .state and .lab, the lab
// passphrase env.sh sets): the dev stack previews before any lab exists; scripts/deploy-dev (set-up,
// `pulumi up --stack dev` that makes the lab machines too, `sparks verify`) deploys it; a second up
// changes nothing; a config edit's preview is exactly that edit's resources; the faults (a database
// killed, a nearly full pool, two ups at once, a host that goes down during an up, a lab host that
// powered off) each end with verify green and nothing lost; no secret shows anywhere; and
// `pulumi destroy --stack dev` leaves the machine as it was.
import { ChildProcess, spawn } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { machineState } from "../lab/labClient";
import { setHostReachable } from "./lab";
import { CheckoutCopy } from "./checkout";
import { mustSucceed, run, RunResult } from "./stack";

jest.setTimeout(20 * 60 * 1000);

describe("the dev stack: one pathway from preview to destroy", () => {
    let checkout: CheckoutCopy;
    /** The copy's directory and environment. */
    let copy: string;
    let env: NodeJS.ProcessEnv;
    let before: ReturnType<typeof machineState>;
    /** Every password the stack ever had, and the lab key's lines: the secrets to look for. */
    const secrets = new Set<string>();
    /** What `ps` showed on the hosts while they were set up, and while forks were made. */
    const processSamples: string[] = [];

    /** Remembers the passwords the stack holds now (a fork's goes when the fork goes). */
    const rememberPasswords = async () => {
        for (const output of ["postgres", "redis"]) {
            const databases = JSON.parse(mustSucceed("outputs", await run("bash", ["-c", `source toolchain/env.sh && pulumi stack output --json --show-secrets --stack dev ${output}`],
                { cwd: copy, env })).stdout) as Record<string, { uri: string }>;
            for (const db of Object.values(databases)) secrets.add(decodeURIComponent(new URL(db.uri).password));
        }
    };

    /** Samples every host's process list until stopped; a host that is not up yet is waited for.
     *  Each sampler also ends once this test process is gone, so a killed run leaves none looping. */
    function sampleProcesses(names: string[]): () => void {
        const samplers: ChildProcess[] = names.map((name) => spawn("bash", ["-c",
            `while kill -0 ${process.pid} 2>/dev/null; do lab/sparks-lab ssh ${name} 'while :; do ps -eww -o args; sleep 0.1; done'; sleep 0.5; done`],
        { cwd: copy, env, detached: true, stdio: ["ignore", "pipe", "ignore"] }));
        for (const sampler of samplers) sampler.stdout!.on("data", (d) => processSamples.push(String(d)));
        return () => {
            for (const sampler of samplers) if (sampler.pid !== undefined) process.kill(-sampler.pid, "SIGKILL");
        };
    }

    beforeAll(() => {
        checkout = new CheckoutCopy();
        copy = checkout.dir;
        env = checkout.env;
        before = machineState(path.join(copy, ".lab"));
    });

    afterAll(async () => {
        await checkout.remove();
    });

    test("previews before any lab exists, and makes none", async () => {
        mustSucceed("set-up", await checkout.file("scripts/setup"));
        mustSucceed("stack init", await checkout.pulumi("stack", "select", "--create"));
        const preview = mustSucceed("preview", await checkout.pulumi("preview", "--diff"));
        expect(preview.stdout).toMatch(/\+ sparks:index:LabHost: \(create\)\n\s+\[urn=urn:pulumi:dev::sparks::sparks:index:LabHost::spark-1\]/);
        const changes = mustSucceed("scripts/preview", await checkout.file("scripts/preview", ["dev"])).stdout.trim().split("\n");
        expect(changes).toContain("dev: create sparks:index:LabHost spark-2");
        expect(changes).toContain("dev: create sparks:index:PgFork app-review");
        expect(changes).toContain("dev: create sparks:index:RedisFork cache-review");
        expect(changes.every((line) => line.startsWith("dev: create "))).toBe(true);
        expect(await checkout.labHosts()).toEqual([]);
        expect(machineState(path.join(copy, ".lab"))).toEqual(before);
    });

    test("scripts/deploy-dev: set-up, one up that makes the lab machines too, and verify", async () => {
        const stopSampling = sampleProcesses(["spark-1", "spark-2"]);
        let deployed: RunResult;
        try {
            deployed = await checkout.file("scripts/deploy-dev");
        } finally {
            stopSampling();
        }
        mustSucceed("deploy-dev", deployed);
        expect(deployed.stdout).toMatch(/^lineage +app-review +ok +\d+\.\ds +holds the data of app <- app-review$/m);
        expect(deployed.stdout).toMatch(/^credentials +redis:cache-review +ok +\d+\.\ds +refuses cache's password$/m);
        expect(deployed.stdout).toMatch(/^kvm +spark-2 +ok /m);
        expect(deployed.stdout).toMatch(/\n\n\d+ checks, 0 failed\n$/);
        expect((await checkout.labHosts()).map((h) => [h.name, h.state])).toEqual([["spark-1", "running"], ["spark-2", "running"]]);
        await rememberPasswords();
        // The lab key's private part: its first two lines are a header and the public key, the
        // same in every unencrypted ed25519 key, and the last holds the comment.
        const key = fs.readFileSync(path.join(copy, ".lab", "ssh", "id_ed25519"), "utf8");
        for (const line of key.split("\n").filter((l) => /^[A-Za-z0-9+/=]{20,}$/.test(l)).slice(2, -1)) secrets.add(line);
    });

    test("a second preview and up change nothing; status shows hosts and databases", async () => {
        mustSucceed("preview", await checkout.pulumi("preview", "--expect-no-changes"));
        mustSucceed("up", await checkout.up("--expect-no-changes"));
        const status = JSON.parse(mustSucceed("sparks status", await checkout.sparks("status", "--stack", "dev", "--json")).stdout);
        expect(status.hosts.map((h: { host: string; reachable: boolean; toolsCurrent: boolean }) => [h.host, h.reachable, h.toolsCurrent]))
            .toEqual([["spark-1", true, true], ["spark-2", true, true]]);
        expect(status.databases.map((d: { name: string; tool: string; state: string; managedBy: string }) => [d.tool, d.name, d.state, d.managedBy]).sort())
            .toEqual([["spark-pg", "app", "running", "stack"], ["spark-pg", "app-review", "running", "stack"],
                ["spark-redis", "cache", "running", "stack"], ["spark-redis", "cache-review", "running", "stack"]]);
    });

    test("a config edit's preview is exactly the resources it changes: one fork added, that fork and nothing else", async () => {
        checkout.editConfig((c) => c["sparks:forks"].push({ name: "app-extra", source: "app" }));
        const changes = mustSucceed("scripts/preview", await checkout.file("scripts/preview", ["dev"])).stdout.trim().split("\n");
        expect(changes).toEqual([
            "dev: create command:remote:Command app-extra-pg",
            "dev: create random:index/randomPassword:RandomPassword app-extra-password",
            "dev: create sparks:index:PgFork app-extra",
        ]);
        const stopSampling = sampleProcesses(["spark-1"]);
        try {
            mustSucceed("up", await checkout.up());
        } finally {
            stopSampling();
        }
        await rememberPasswords();
        expect(await checkout.verifyGreen()).toMatch(/^lineage +app-extra +ok +\d+\.\ds +holds the data of app <- app-extra$/m);
        checkout.editConfig((c) => { c["sparks:forks"] = c["sparks:forks"].filter((f: { name: string }) => f.name !== "app-extra"); });
        expect(mustSucceed("scripts/preview", await checkout.file("scripts/preview", ["dev"])).stdout.trim().split("\n")).toEqual([
            "dev: delete command:remote:Command app-extra-pg",
            "dev: delete random:index/randomPassword:RandomPassword app-extra-password",
            "dev: delete sparks:index:PgFork app-extra",
        ]);
        mustSucceed("up", await checkout.up());
    });

    test("fault: a database killed with SIGKILL comes back with every committed row", async () => {
        await checkout.onHost("spark-1", "spark-pg connect app --psql >/dev/null", "CREATE TABLE IF NOT EXISTS fault_probe (v text); INSERT INTO fault_probe VALUES ('before the kill');\n");
        await checkout.onHost("spark-1", "kill -KILL $(head -1 /srv/sparks/pg/app/data/postmaster.pid)");
        for (const deadline = Date.now() + 60_000; ;) {
            const state = (await checkout.onHost("spark-1", "systemctl is-active spark-pg@app || true")).trim();
            if (state === "active" && (await checkout.onHost("spark-1", "spark-pg status app --json")).includes('"running"')) break;
            if (Date.now() > deadline) throw new Error(`spark-pg@app is ${state} 60 s after its SIGKILL`);
            await new Promise((r) => setTimeout(r, 500));
        }
        await checkout.verifyGreen();
        expect(await checkout.onHost("spark-1", "spark-pg connect app --psql", "SELECT v FROM fault_probe;\n")).toContain("before the kill");
    });

    test("fault: a nearly full pool fails the fork clearly and breaks nothing", async () => {
        // Leave 200 MiB: under the 512 MiB spark-pg keeps in reserve.
        await checkout.onHost("spark-1", "avail=$(( $(stat -f -c '%a * %S' /srv/sparks) )); fallocate -l $(( avail - 200 * 1048576 )) /srv/sparks/filler");
        try {
            checkout.editConfig((c) => c["sparks:forks"].push({ name: "app-full", source: "app" }));
            const failed = await checkout.up();
            expect(failed.code).not.toBe(0);
            expect(failed.stdout + failed.stderr).toMatch(/spark-pg fork: pool full: \d+ MiB free on \S+, need 512 MiB/);
            await checkout.verifyGreen();
        } finally {
            await checkout.onHost("spark-1", "rm -f /srv/sparks/filler");
            checkout.editConfig((c) => { c["sparks:forks"] = c["sparks:forks"].filter((f: { name: string }) => f.name !== "app-full"); });
        }
        mustSucceed("up", await checkout.up());
        mustSucceed("preview", await checkout.pulumi("preview", "--expect-no-changes"));
        expect(await checkout.onHost("spark-1", "spark-pg list")).not.toContain("app-full");
    });

    test("fault: two ups at once: one runs, the other is refused by the stack's lock, and nothing breaks", async () => {
        checkout.editConfig((c) => c["sparks:forks"].push({ name: "app-twice", source: "app" }));
        const [first, second] = await Promise.all([checkout.up(), checkout.up()]);
        const results = [first, second].sort((a, b) => a.code - b.code);
        expect(results.map((r) => r.code === 0)).toEqual([true, false]);
        expect(results[1].stdout + results[1].stderr).toMatch(/the stack is currently locked by 1 lock/);
        await rememberPasswords();
        mustSucceed("preview", await checkout.pulumi("preview", "--expect-no-changes"));
        await checkout.verifyGreen();
        checkout.editConfig((c) => { c["sparks:forks"] = c["sparks:forks"].filter((f: { name: string }) => f.name !== "app-twice"); });
        mustSucceed("up", await checkout.up());
    });

    test("fault: a host that drops off the network during an up fails at most its own changes, and the next up converges", async () => {
        // Three dials per command, not the default six: the behaviour is the same, the wait shorter.
        checkout.editConfig((c) => { c["sparks:ssh"] = { ...(c["sparks:ssh"] ?? {}), connectAttempts: 3 }; });
        // A tool edit changes both hosts: spark-2 goes off the network as soon as its copy starts,
        // for 20 s. (Off for good, a command caught mid-transfer would wait for TCP to give up,
        // about 15 minutes: see README, "When things go wrong during up". A host that is down
        // for a whole up is test/e2e/fleet.test.ts's.)
        fs.appendFileSync(path.join(copy, "host", "libexec", "spark-pg-version"), "# edited during the down-host fault\n");
        const spark2 = (await checkout.labHosts()).find((h) => h.name === "spark-2")!;
        const running = spawn("bash", ["-c", "source toolchain/env.sh && exec pulumi up --yes --skip-preview --stack dev --non-interactive"], { cwd: copy, env });
        let output = "";
        let outage: Promise<void> | undefined;
        const exited = new Promise<number>((resolve) => running.on("exit", (code) => resolve(code ?? 1)));
        for (const stream of [running.stdout, running.stderr]) {
            stream.on("data", (d) => {
                output += String(d);
                if (outage === undefined && /spark-2-tools-copy/.test(output)) {
                    outage = setHostReachable(spark2, false).then(() => new Promise((r) => setTimeout(r, 20_000))).then(() => setHostReachable(spark2, true));
                }
            });
        }
        const code = await exited;
        checkout.seen.push(output);
        expect(outage).toBeDefined();
        await outage;
        // spark-1's part went through; whatever failed was spark-2's.
        expect(output).toMatch(/spark-1-tools-copy/);
        if (code !== 0) expect(output.split("\n").filter((l) => /error:/.test(l) && /spark-1/.test(l))).toEqual([]);
        mustSucceed("up after the host came back", await checkout.up());
        mustSucceed("preview", await checkout.pulumi("preview", "--expect-no-changes"));
        await checkout.verifyGreen();
    });

    test("a lab host that powered off is booted again by the next up, as the same machine", async () => {
        const resourcesBefore = await checkout.resources();
        // The host may close the connection before ssh sees the command's status: that is the poweroff.
        await checkout.onHostResult("spark-2", "systemctl poweroff --no-block");
        for (const deadline = Date.now() + 60_000; ;) {
            if ((await checkout.labHosts()).find((h) => h.name === "spark-2")?.state === "stopped") break;
            if (Date.now() > deadline) throw new Error("spark-2 did not stop within 60 s of poweroff");
            await new Promise((r) => setTimeout(r, 200));
        }
        const again = mustSucceed("up", await checkout.up());
        expect(again.stderr + again.stdout).toMatch(/spark-2-machine/);
        expect(await checkout.resources()).toEqual(resourcesBefore);
        mustSucceed("preview", await checkout.pulumi("preview", "--expect-no-changes"));
        await checkout.verifyGreen();
    });

    test("no password or private key in plain text: stack export, outputs, process lists, journals and logs, .state", async () => {
        expect(secrets.size).toBeGreaterThan(3);
        expect(processSamples.join("").length).toBeGreaterThan(1000);
        const leaks = (where: string, text: string) => [...secrets].filter((secret) => text.includes(secret)).map(() => where);
        const found: string[] = [];
        found.push(...leaks("stack export", mustSucceed("export", await checkout.pulumi("stack", "export")).stdout));
        found.push(...leaks("a command's output", checkout.seen.join("\n")));
        found.push(...leaks("a host's process list", processSamples.join("")));
        const stateFiles = fs.readdirSync(path.join(copy, ".state"), { recursive: true, withFileTypes: true }).filter((e) => e.isFile());
        expect(stateFiles.length).toBeGreaterThan(0);
        for (const entry of stateFiles) found.push(...leaks(`.state file ${entry.name}`, fs.readFileSync(path.join(entry.parentPath, entry.name), "utf8")));
        for (const host of ["spark-1", "spark-2"]) {
            // The secrets go in on stdin, so this search never puts them on a command line itself.
            const hits = await checkout.onHost(host, "journalctl --no-pager -o cat > /root/journal.txt; grep -rlF -f /dev/stdin /root/journal.txt /var/log /var/lib/sparks /etc /srv/sparks /tmp /var/tmp 2>/dev/null || true; rm -f /root/journal.txt",
                [...secrets].join("\n") + "\n");
            found.push(...hits.split("\n").filter(Boolean).map((file) => `${host}:${file}`));
        }
        expect(found).toEqual([]);
    });

    test("destroy removes the lab machines too, and leaves the machine as it was", async () => {
        mustSucceed("destroy", await checkout.pulumi("destroy", "--yes", "--skip-preview"));
        expect(await checkout.labHosts()).toEqual([]);
        expect(machineState(path.join(copy, ".lab"))).toEqual(before);
        expect(fs.readdirSync(path.join(copy, ".lab"))).toEqual(["ssh"]);
    });
});
