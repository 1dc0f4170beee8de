// The dev stack's program against two real lab hosts, through the real engine, as a lifecycle:
// preview, up, verify, no-change preview and up, a tool edit, a fork added and removed, an
// instance's snapshot and a fork of it (a fixture) added, reset and removed, a wrong
// host key, a host that is down, a failed verify check, then destroy back to the hosts' first state.
import * as fs from "fs";
import * as path from "path";
import * as YAML from "yaml";
import { contentHash, HOST_TOOLS_DIR } from "../../components/sparksHost";
import { CheckResult, verifyStack } from "../../cli/verify";
import { LabHost, labDown, labUp, onHost, setHostReachable } from "./lab";
import { mustSucceed, ROOT, run, RunResult, TestStack } from "./stack";

jest.setTimeout(20 * 60 * 1000);

// What Sparks may touch on a host, apart from installed packages: destroy must restore all of it.
// Debian's lighttpd.service and redis-server.service stay masked while their packages stay
// installed (so nothing serves ports 80 and 6379): those links belong to the packages.
const MASKED_WITH_PACKAGE = { lighttpd: "lighttpd.service", "redis-server": "redis-server.service" };
const HOST_STATE = [
    `ls -1 /etc/systemd/system /etc/tmpfiles.d /usr/local/bin /opt /var/tmp 2>&1 | grep -vx ${Object.values(MASKED_WITH_PACKAGE).map((u) => `-e ${u}`).join(" ")}`,
    ...Object.entries(MASKED_WITH_PACKAGE).map(([pkg, unit]) =>
        `l=/etc/systemd/system/${unit}; if [ ! -e $l ] && [ ! -L $l ] || { [ "$(readlink $l)" = /dev/null ] && dpkg -s ${pkg} >/dev/null 2>&1; }; then echo ${pkg} unmasked or masked with its package; else ls -l $l; fi`),
    "ls -1d /var/lib/sparks 2>&1 || true",
    "ls -1 /etc/sparks 2>&1 || true",
    // A flat list (no tree), without the login session's runtime mounts that come and go with ssh.
    "findmnt --list --noheadings --output TARGET,SOURCE,FSTYPE | grep -v -e '^/run/user/' -e '^/run/credentials/' | sort",
    "blkid -p /dev/vdb || echo blank",
    "systemctl list-units --all --plain --no-legend 'spark-pg@*' 'spark-redis@*' 'srv-*.mount'",
    "stat -c '%a %G' /dev/kvm",
].join("; echo --; ");

/**
 * The dev stack file, deployed the way prod is: to servers that already exist (the lab's, brought up
 * by the test) with their keys pinned in config and a key file to log in with, instead of lab
 * machines the stack makes itself (that pathway is test/e2e/deploy-dev.test.ts).
 */
function pinnedConfig(): Record<string, any> {
    const config = YAML.parse(fs.readFileSync(path.join(ROOT, "Pulumi.dev.yaml"), "utf8")).config;
    delete config["sparks:lab"];
    config["sparks:ssh"].privateKeyFile = ".lab/ssh/id_ed25519";
    for (const host of config["sparks:hosts"]) host.hostKeyFile = `.lab/hosts/${host.name}/ssh_host_ed25519_key.pub`;
    return config;
}

/** The lines of passed checks; fails the test, naming them, on any failed one. */
function passedChecks(results: CheckResult[]): string[] {
    expect(results.filter((r) => !r.ok)).toEqual([]);
    return results.map((r) => `${r.check} ${r.target}: ${r.detail}`);
}

describe("the fleet on two lab hosts", () => {
    let hosts: LabHost[];
    let stack: TestStack;
    let firstState: string[];
    let config: Record<string, any>;
    const timings: Record<string, number> = {};

    /** Runs a pulumi command and records its time; a slow one shows its output (per-resource times). */
    async function timed(label: string, action: () => Promise<RunResult>): Promise<RunResult> {
        const start = Date.now();
        const result = await action();
        timings[label] = (Date.now() - start) / 1000;
        if (timings[label] > 60) console.log(`${label} took ${timings[label]} s:\n${result.stdout.slice(0, 4000)}\n...\n${result.stdout.slice(-3000)}`);
        return result;
    }

    const hostStates = () => Promise.all(hosts.map((h) => onHost(h, HOST_STATE)));
    const expectOk = (result: RunResult) => mustSucceed("pulumi", result);

    beforeAll(async () => {
        hosts = await labUp(2);
        firstState = await hostStates();
        // The dev stack file itself, with the lab's key files linked in, and settings that let the
        // test destroy everything and fail fast on a host that is down.
        config = pinnedConfig();
        config["sparks:pool"].wipeOnDelete = true;
        config["sparks:pg"].protectInstances = false;
        config["sparks:ssh"].connectAttempts = 3;
        stack = await TestStack.create("dev", config);
        fs.symlinkSync(path.join(ROOT, ".lab"), path.join(stack.dir, ".lab"));
    });

    afterAll(async () => {
        console.log(`fleet timings (s): ${JSON.stringify(timings)}`);
        if (stack) await stack.remove();
        await labDown();
    });

    test("preview shows the whole fleet and touches no host", async () => {
        const preview = await stack.preview();
        expectOk(preview);
        for (const name of ["spark-1-pool", "spark-2-verify", "app-pg", "app-review-pg", "cache-redis", "cache-review-redis"]) expect(preview.stdout).toContain(name);
        expect(await hostStates()).toEqual(firstState);
    });

    // Where the tools used to be staged: a path any local user can compute and create first.
    const oldStaging = `/var/tmp/sparks-tools-${contentHash(HOST_TOOLS_DIR)}`;
    const asNobody = (script: string) => `setpriv --reuid=nobody --regid=nogroup --clear-groups sh -c '${script}'`;

    test("before the first up: a local user's planted tools are not installed, and a non-empty mount point is refused", async () => {
        for (const host of hosts) {
            await onHost(host, asNobody(`mkdir -p ${oldStaging}/bin && printf "#!/bin/sh\\necho planted\\n" >${oldStaging}/bin/planted && chmod 755 ${oldStaging}/bin/planted`));
        }
        await onHost(hosts[1], "mkdir -p /srv/sparks && touch /srv/sparks/keep-me");
        const up = await stack.up();
        expect(up.code).not.toBe(0);
        expect(up.stdout + up.stderr).toContain(
            "sparks setup: host spark-2: pool: /srv/sparks is not empty (it holds keep-me); refusing to mount the pool over it");
        expect((await onHost(hosts[1], "ls /srv/sparks")).trim()).toBe("keep-me");
        await onHost(hosts[1], "rm -r /srv/sparks");
    });

    test("up sets both hosts up, and verify passes", async () => {
        expectOk(await timed("first up", () => stack.up()));
        const outputs = await stack.outputs();
        for (const host of hosts) expect(outputs.hosts[host.name].kvmApiVersion).toBe(12);
        const checks = passedChecks(await verifyStack(outputs));
        expect(checks).toContain("diverges app-review: diverges from app in both directions");
        // Redis through pulumi up: each answers with its own password, the fork holds its
        // source's keys, refuses its source's password and diverges.
        expect(checks).toEqual(expect.arrayContaining([
            "lineage redis:cache-review: holds the data of cache <- cache-review",
            "credentials redis:cache-review: refuses cache's password",
            "diverges redis:cache-review: diverges from cache in both directions",
        ]));
        expect(outputs.redis["cache-review"]).toMatchObject({ source: "cache", host: "spark-1" });
        // The verify command as people run it: every check live, on the hosts the stack's config names.
        const cli = mustSucceed("sparks verify", await stack.command(path.join(ROOT, "bin", "sparks"), ["verify", "--stack", "dev"]));
        expect(cli.stdout).toMatch(/^orphans +spark-2 +ok +\d+\.\ds +no orphan databases; made by hand \(unmanaged\): none$/m);
        expect(cli.stdout).toMatch(/^kvm +spark-1 +ok +\d+\.\ds +KVM API version 12, \/dev\/kvm 660 kvm$/m);
        expect(cli.stdout).toMatch(/^connect +app-review +ok +\d+\.\ds +answers on spark-1:\d+ with its own password, over TLS verified against spark-1's certificate$/m);
        expect(cli.stdout).toMatch(/\n\n(\d+) checks, 0 failed\n$/);
    });

    test("verify fails on a database the stack made but no longer manages, and lists those made by hand", async () => {
        const checks = {
            run: (name: string, command: string) => onHost(hosts.find((h) => h.name === name)!, command),
            ownerPrefix: "sparks/dev/", toolsHash: contentHash(path.join(stack.dir, "host")),
        };
        await onHost(hosts[0], "spark-pg new stray --owner sparks/dev/stray >/dev/null && spark-pg new byhand >/dev/null");
        try {
            const failed = (await verifyStack(await stack.outputs(), checks)).filter((r) => !r.ok);
            expect(failed.map((r) => [r.check, r.target, r.detail])).toEqual([["orphans", "spark-1",
                "orphan database(s) stray (owner sparks/dev/stray): made by this stack, no longer managed by it; destroy them (spark-pg destroy NAME) or put them back in the config"]]);
            await onHost(hosts[0], "spark-pg destroy stray >/dev/null");
            expect(passedChecks(await verifyStack(await stack.outputs(), checks))).toContain(
                "orphans spark-1: no orphan databases; made by hand (unmanaged): byhand");
        } finally {
            await onHost(hosts[0], "spark-pg destroy --if-exists stray >/dev/null; spark-pg destroy --if-exists byhand >/dev/null");
        }
    });

    test("the installed tools are root's alone, and the staging directory is closed to local users", async () => {
        for (const host of hosts) {
            expect(await onHost(host, "find /opt/sparks /usr/local/bin ! -user root -print; ls /usr/local/bin")).not.toMatch(/planted|\/opt\/sparks/);
            expect((await onHost(host, "stat -c '%U %a' /var/lib/sparks/staging")).trim()).toBe("root 700");
            expect(await onHost(host, `${asNobody("ls /var/lib/sparks/staging; mkdir /var/lib/sparks/staging/x")} 2>&1 || true`)).toMatch(/Permission denied/);
            await onHost(host, `rm -r ${oldStaging}`);
        }
    });

    test("a second preview and up change nothing", async () => {
        expectOk(await stack.preview("--expect-no-changes"));
        expectOk(await timed("no-change up", () => stack.up("--expect-no-changes")));
    });

    test("a host tool edit updates only the tools and their verify, on each host", async () => {
        fs.appendFileSync(path.join(stack.dir, "host", "libexec", "spark-pg-version"), "# edited by the e2e test\n");
        expect(await stack.plannedSteps()).toEqual(["spark-1", "spark-2"].flatMap((h) => [
            ["update", `${h}-tools`], ["update", `${h}-tools-copy`], ["update", `${h}-verify`],
        ]).sort());
        const before = (await stack.outputs()).hosts["spark-1"].tools;
        expectOk(await timed("tool edit up", () => stack.up()));
        expect((await stack.outputs()).hosts["spark-1"].tools).not.toBe(before);
    });

    test("a fork added to config is created, and removed is destroyed; nothing else changes", async () => {
        const forks = config["sparks:forks"];
        stack.setConfig({ ...config, "sparks:forks": [...forks, { name: "app-qa", source: "app-review" }] });
        expect((await stack.plannedSteps()).map(([op, name]) => `${op} ${name}`)).toEqual(
            ["create app-qa", "create app-qa-password", "create app-qa-pg"],
        );
        // The output keeps to what matters: no NOTICE from the lineage tables a fork already has.
        expect(expectOk(await stack.up()).stdout).not.toContain("NOTICE");
        expect(passedChecks(await verifyStack(await stack.outputs()))).toContain("lineage app-qa: holds the data of app <- app-review <- app-qa");

        stack.setConfig(config);
        expect((await stack.plannedSteps()).map(([op, name]) => `${op} ${name}`)).toEqual(
            ["delete app-qa", "delete app-qa-password", "delete app-qa-pg"],
        );
        expectOk(await stack.up());
        expect(await onHost(hosts[0], "spark-pg list --json")).not.toContain("app-qa");
    });

    test("a snapshot declared for an instance, and a fork of it: made by up, verified, reset by hand to the fixture, dropped when removed", async () => {
        const withFixture = {
            ...config,
            "sparks:postgres": config["sparks:postgres"].map((p: { name: string }) => (p.name === "app" ? { ...p, snapshots: ["fixture"] } : p)),
            "sparks:forks": [...config["sparks:forks"], { name: "app-t1", source: "app@fixture" }],
        };
        stack.setConfig(withFixture);
        expect((await stack.plannedSteps()).map(([op, name]) => `${op} ${name}`)).toEqual(
            ["create app-snapshot-fixture", "create app-snapshot-fixture-snapshot", "create app-t1", "create app-t1-password", "create app-t1-pg"],
        );
        expectOk(await stack.up());
        const outputs = await stack.outputs();
        expect(outputs.postgres["app-t1"]).toMatchObject({ source: "app", sourceSnapshot: "fixture" });
        expect(passedChecks(await verifyStack(outputs))).toContain("lineage app-t1: holds the data of app <- app-t1");
        // An engineer's test run: writes, then reset to the fixture, on the same port and password.
        const t1 = JSON.parse(await onHost(hosts[0], "spark-pg status app-t1 --json"));
        expect(t1).toMatchObject({ source: "app", source_snapshot: "fixture", expires: null, owner: "sparks/dev/app-t1" });
        await onHost(hosts[0], "echo 'CREATE TABLE scratch (x int);' | spark-pg connect app-t1 --psql");
        expect(JSON.parse(await onHost(hosts[0], "spark-pg reset app-t1 --json"))).toMatchObject({ name: "app-t1", source_snapshot: "fixture" });
        expect(await onHost(hosts[0], "echo \"SELECT count(*) FROM pg_tables WHERE tablename = 'scratch';\" | spark-pg connect app-t1 --psql")).toMatch(/^\s*0\s*$/m);
        expect(passedChecks(await verifyStack(await stack.outputs()))).toContain("lineage app-t1: holds the data of app, reset to it since it was made");
        // A second up leaves the snapshot as it is: it was taken once.
        expect(await stack.plannedSteps()).toEqual([]);

        stack.setConfig(config);
        expect((await stack.plannedSteps()).map(([op, name]) => `${op} ${name}`)).toEqual(
            ["delete app-snapshot-fixture", "delete app-snapshot-fixture-snapshot", "delete app-t1", "delete app-t1-password", "delete app-t1-pg"],
        );
        expectOk(await stack.up());
        expect(JSON.parse(await onHost(hosts[0], "spark-pg snapshots app --json"))).toEqual([]);
    });

    test("a wrong pinned host key refuses to connect, and changes nothing", async () => {
        const wrong = structuredClone(config);
        delete wrong["sparks:hosts"][1].hostKeyFile;
        wrong["sparks:hosts"][1].hostKey = fs.readFileSync(hosts[0].hostKeyFile, "utf8").trim();
        stack.setConfig(wrong);
        const up = await timed("wrong key up", () => stack.up());
        expect(up.code).not.toBe(0);
        expect(up.stdout + up.stderr).toMatch(/host spark-2 \(10\.89\.42\.12:22\) presented host key ssh-ed25519 \S+, not the pinned .*refusing to connect/);
        stack.setConfig(config);
        expectOk(await stack.preview("--expect-no-changes"));
    });

    test("a host that is down blocks only its own changes, is named once, and up converges once it is back", async () => {
        const warning = "host spark-2 (10.89.42.12:22) did not answer ssh within 3 s: its resources with changes will fail until it is back";
        await setHostReachable(hosts[1], false);
        try {
            // Nothing to change: the up goes ahead, and only the probe's few seconds are spent on spark-2.
            const quiet = await timed("no-change up, spark-2 down", () => stack.up("--expect-no-changes"));
            expectOk(quiet);
            // Once in the run's diagnostics (the progress display repeats what it says there).
            const diagnostics = (quiet.stdout + quiet.stderr).split("Diagnostics:").slice(1).join("");
            expect(diagnostics.split(warning).length - 1).toBe(1);
            // A change on both hosts: spark-2's fails in the provider after its bounded retries.
            fs.appendFileSync(path.join(stack.dir, "host", "libexec", "spark-pg-version"), "# edited while spark-2 is down\n");
            const changed = await stack.up();
            expect(changed.code).not.toBe(0);
            expect(changed.stdout + changed.stderr).toContain(warning);
            expect(changed.stdout + changed.stderr).toMatch(/spark-2-tools-copy[^\n]*after 2 failed attempts/);
            expect(changed.stdout + changed.stderr).not.toMatch(/error serializing property/);
        } finally {
            await setHostReachable(hosts[1], true);
        }
        expectOk(await stack.up());
        expectOk(await stack.preview("--expect-no-changes"));
    });

    test("a failed verify check names the host, the check and what to do", async () => {
        await onHost(hosts[0], "chmod 0600 /dev/kvm");
        fs.appendFileSync(path.join(stack.dir, "host", "libexec", "spark-pg-version"), "# edited again\n");
        const up = await stack.up();
        expect(up.code).not.toBe(0);
        expect(up.stdout + up.stderr).toContain('sparks verify: host spark-1: check kvm failed: /dev/kvm is 600 kvm, expected "660 kvm"; run systemd-tmpfiles --create /etc/tmpfiles.d/sparks-kvm.conf');
        await onHost(hosts[0], "systemd-tmpfiles --create /etc/tmpfiles.d/sparks-kvm.conf");
        expectOk(await stack.up());
    });

    test("pulumi killed with SIGKILL while an up creates a fork: the documented recovery converges, with no orphan", async () => {
        stack.setConfig({ ...config, "sparks:forks": [...config["sparks:forks"], { name: "app-late", source: "app" }] });
        const up = stack.start(["up", "--yes", "--skip-preview"]);
        // Kill it the moment the fork exists on the host: its create has not been recorded yet.
        for (const deadline = Date.now() + 120_000; !(await onHost(hosts[0], "spark-pg list --json")).includes('"app-late"');) {
            if (Date.now() > deadline || up.exitCode !== null) throw new Error("the fork did not appear while pulumi ran");
            await new Promise((r) => setTimeout(r, 100));
        }
        up.kill("SIGKILL");
        await new Promise((r) => up.once("exit", r));
        // The recovery the README gives: release the dead run's lock, clear its interrupted create,
        // then up again (which adopts the fork).
        expectOk(await stack.pulumi(["cancel", "--yes"]));
        expectOk(await stack.pulumi(["refresh", "--yes", "--skip-preview", "--clear-pending-creates"]));
        expectOk(await stack.up());
        expect(passedChecks(await verifyStack(await stack.outputs()))).toContain("lineage app-late: holds the data of app <- app-late");
        const onHostNow = JSON.parse(await onHost(hosts[0], "spark-pg list --json")) as { name: string; owner: string | null }[];
        expect(onHostNow.filter((db) => db.name === "app-late")).toEqual([expect.objectContaining({ owner: "sparks/dev/app-late" })]);
        stack.setConfig(config);
        expectOk(await stack.up());
        expect(await onHost(hosts[0], "spark-pg list --json")).not.toContain('"app-late"');
    });

    test("rotating the deploy key is a routine up: every database is adopted as it was", async () => {
        const rotated = path.join(stack.dir, "rotated_ed25519");
        mustSucceed("ssh-keygen", await run("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "rotated", "-f", rotated]));
        const publicKey = fs.readFileSync(`${rotated}.pub`, "utf8").trim();
        // As an operator would: authorize the new key, retire the old one, switch the stack to the new one.
        for (const host of hosts) {
            await onHost(host, `echo '${publicKey}' >>/root/.ssh/authorized_keys`);
            await onHost({ ...host, privateKeyFile: rotated }, "cp /root/.ssh/authorized_keys /root/.ssh/authorized_keys.lab && sed -i '/ rotated$/!d' /root/.ssh/authorized_keys");
        }
        try {
            stack.setConfig({ ...config, "sparks:ssh": { ...config["sparks:ssh"], privateKeyFile: "rotated_ed25519" } });
            expectOk(await timed("key rotation up", () => stack.up()));
            expect(passedChecks(await verifyStack(await stack.outputs()))).toContain("diverges app-review: diverges from app in both directions");
            expectOk(await stack.up("--expect-no-changes"));
        } finally {
            // Back to the lab key, which the rest of the test (and destroy) log in with.
            for (const host of hosts) await onHost({ ...host, privateKeyFile: rotated }, "mv /root/.ssh/authorized_keys.lab /root/.ssh/authorized_keys");
            stack.setConfig(config);
        }
        expectOk(await stack.up());
    });

    test("destroy leaves the hosts as they were, apart from installed packages", async () => {
        expectOk(await stack.destroy());
        expect(await hostStates()).toEqual(firstState);
    });
});
