// Dev containers through the one pathway: `pulumi up --stack dev` on the lab hosts makes two
// containers on spark-1 from the host's base image; each is reached by SSH as its owner (two
// sessions at once, SFTP, a terminal that follows the window), boots a KVM guest as dev, keeps its
// home across stop/start and a re-creation from a new base image, and changes packages and limits
// in place; idle stop stops one; a host without usable KVM fails its container's verify by name;
// removing them leaves no process, unit or subvolume but the home that was to be kept. The stack
// is the dev stack's, kept to its first host. spark-dev's own edges (bad input, a killed or failed
// create, what root inside a container can plant) are tested there too. The same up serves the
// skills repo on spark-1 (it syncs into the containers): cloned over HTTP, pushed over SSH, a
// broken push refused, every container's ~/skills current within a minute; removed, its data stays.
import * as fs from "fs";
import * as path from "path";
import { refusal } from "../host/labHost";
import { CheckoutCopy } from "./checkout";
import { mustSucceed, run, RunResult } from "./stack";

jest.setTimeout(30 * 60 * 1000);

const DEV_ROOT = "/srv/sparks/dev";
const ADA = { name: "ada", host: "spark-1", address: "10.89.42.201" };
const BOB = { name: "bob", host: "spark-1", address: "10.89.42.202" };
/** Prints the terminal size whenever it changes, inside tmux: the pty test reads it. */
const SIZE_LOOP = "tmux new-session 'while :; do stty size; sleep 0.2; done'";
const SKILLS_URL = "http://10.89.42.11:8080/skills.git";
const SKILLS_PUSH = "sparks-skills@10.89.42.11:skills.git";

describe("dev containers on lab hosts, through pulumi up --stack dev", () => {
    let checkout: CheckoutCopy;
    let ownerKey: string;
    let pusherKey: string;
    let knownHosts: string;
    /** sparks:skillsRepo as the suite set it, while a test has it out of the config. */
    let skillsRepoConfig: unknown;

    /** ssh as dev into a container, with the owner's key and the container's pinned host key. */
    const sshArgs = (address: string, ...command: string[]) => [
        "-i", ownerKey, "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes",
        "-o", `UserKnownHostsFile=${knownHosts}`, "-o", "ConnectTimeout=10", `dev@${address}`, ...command,
    ];
    const asDev = (address: string, command: string, input?: string): Promise<RunResult> =>
        run("ssh", sshArgs(address, command), { input, timeoutMs: 120_000 });
    const devOk = async (address: string, command: string, input?: string) =>
        mustSucceed(`as dev at ${address}: ${command}`, await asDev(address, command, input)).stdout;
    const onSpark1 = (command: string) => checkout.onHost("spark-1", command);
    const sparkDev = async (args: string) => JSON.parse(await onSpark1(`spark-dev ${args} --json`));
    /** The containers' host keys, as spark-1 holds them, pinned for ssh. */
    const pinContainerKeys = async () => {
        const lines: string[] = [];
        for (const c of [ADA, BOB]) {
            const key = await onSpark1(`cat /srv/sparks/dev/${c.name}/hostkeys/ssh_host_ed25519_key.pub`);
            lines.push(`${c.address} ${key.trim().split(" ").slice(0, 2).join(" ")}`);
        }
        fs.writeFileSync(knownHosts, `${lines.join("\n")}\n`);
    };
    const setContainers = (containers: Record<string, unknown>[]) =>
        checkout.editConfig((config) => { config["sparks:devContainers"] = containers; });
    const container = (spec: typeof ADA, more: Record<string, unknown> = {}) =>
        ({ ...spec, ownerKeys: [fs.readFileSync(`${ownerKey}.pub`, "utf8").trim()], ...more });

    beforeAll(async () => {
        checkout = new CheckoutCopy();
        ownerKey = path.join(checkout.dir, ".owner_key");
        knownHosts = path.join(checkout.dir, ".known_hosts.containers");
        pusherKey = path.join(checkout.dir, ".pusher_key");
        mustSucceed("ssh-keygen", await run("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "ada@laptop", "-f", ownerKey]));
        mustSucceed("ssh-keygen", await run("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "skills-pusher", "-f", pusherKey]));
        // The containers live on spark-1: the stack keeps to it (no second host, no databases),
        // which saves this suite a host's setup.
        checkout.editConfig((config) => {
            config["sparks:lab"] = { hosts: ["spark-1"] };
            config["sparks:hosts"] = config["sparks:hosts"].filter((h: { name: string }) => h.name === "spark-1");
            config["sparks:postgres"] = [];
            config["sparks:forks"] = [];
            delete config["sparks:redis"];
            config["sparks:skillsRepo"] = { host: "spark-1", pushKeys: [fs.readFileSync(`${pusherKey}.pub`, "utf8").trim()] };
        });
        mustSucceed("set-up", await checkout.file("scripts/setup"));
        mustSucceed("stack init", await checkout.pulumi("stack", "select", "--create"));
    });

    afterAll(async () => {
        await checkout.remove();
    });

    test("up makes two containers on spark-1 from one base image, and verify proves each", async () => {
        setContainers([container(ADA, { packages: ["jq"] }), container(BOB, { keepHome: false })]);
        const up = await checkout.up();
        mustSucceed("up", up);
        const outputs = JSON.parse(mustSucceed("outputs", await checkout.pulumi("stack", "output", "--json", "devContainers")).stdout);
        expect(Object.keys(outputs).sort()).toEqual(["ada", "bob"]);
        expect(outputs.ada).toMatchObject({ state: "running", address: ADA.address, packages: ["jq"] });
        expect(outputs.ada.verified.kvm).toMatch(/^kvm guest: sparks kvm guest ok [0-9a-f]{8} /);
        // New, so its verify step also stopped and started it, and found its home as it was.
        expect(outputs.ada.verified.restarted).toBe(true);
        expect(outputs.ada.image).toBe(outputs.bob.image);
        const verify = await checkout.verifyGreen();
        expect(verify).toMatch(/^devcontainers +spark-1 +ok .*dev containers ada bob: SSH as dev, a KVM guest booted, home in place/m);
        expect(verify).toMatch(/^skills +spark-1 +ok .*skills repo: ok \(healthz, HTTP clone, SSH push to sparks-verify at [0-9a-f]{12}, broken push refused\)/m);
        await pinContainerKeys();
    });

    test("each is reached by SSH as dev: two sessions at once, and SFTP", async () => {
        for (const c of [ADA, BOB]) {
            // The first session stays open while the second runs.
            const first = run("ssh", sshArgs(c.address, "echo open; sleep 5; echo closed"), { timeoutMs: 60_000 });
            await new Promise((r) => setTimeout(r, 1500));
            expect((await devOk(c.address, "id -un; hostname; ls -ld /dev/kvm")).split("\n").slice(0, 2)).toEqual(["dev", c.name]);
            expect(mustSucceed("first session", await first).stdout).toBe("open\nclosed\n");
            const local = path.join(checkout.dir, `.sftp-${c.name}`);
            fs.writeFileSync(local, `sent to ${c.name}\n`);
            const batch = `put ${local} sent.txt\nget sent.txt ${local}.back\n`;
            mustSucceed("sftp", await run("sftp", ["-b", "-", ...sshArgs(c.address).filter((a) => a !== `dev@${c.address}`), `dev@${c.address}`], { input: batch }));
            expect(fs.readFileSync(`${local}.back`, "utf8")).toBe(`sent to ${c.name}\n`);
            expect(await devOk(c.address, "cat sent.txt")).toBe(`sent to ${c.name}\n`);
        }
    });

    describe("the skills repo on spark-1, synced into each container", () => {
        let clone: string;
        const git = async (...args: string[]) => mustSucceed(`git ${args.join(" ")}`, await run("git", ["-C", clone, ...args], { env: pushEnv() }));
        /** git's ssh: the pusher's key, spark-1's recorded host key pinned. */
        const pushEnv = () => ({
            ...process.env, GIT_AUTHOR_NAME: "Ada", GIT_AUTHOR_EMAIL: "ada@example.org", GIT_COMMITTER_NAME: "Ada", GIT_COMMITTER_EMAIL: "ada@example.org",
            GIT_SSH_COMMAND: `ssh -i ${pusherKey} -o IdentitiesOnly=yes -o BatchMode=yes -o StrictHostKeyChecking=yes -o UserKnownHostsFile=${path.join(checkout.dir, ".known_hosts.spark-1")}`,
        });
        const remoteMain = async () => (await run("git", ["ls-remote", SKILLS_URL, "refs/heads/main"])).stdout.split("\t")[0];
        /** GET on the skills repo's port: the body and the status code. */
        const curl = async (urlPath: string) => {
            const out = mustSucceed(`curl ${urlPath}`, await run("curl", ["-sS", "--max-time", "10", "-w", "\n%{http_code}", `http://10.89.42.11:8080${urlPath}`])).stdout;
            const end = out.lastIndexOf("\n");
            return { body: out.slice(0, end), code: out.slice(end + 1) };
        };

        test("anonymous clone over HTTP, /healthz, the skills list and text, and no push over HTTP", async () => {
            const outputs = JSON.parse(mustSucceed("outputs", await checkout.pulumi("stack", "output", "--json")).stdout);
            expect(outputs.skillsRepo).toMatchObject({ url: SKILLS_URL, pushUrl: SKILLS_PUSH, host: "spark-1" });
            const head: string = outputs.skillsRepo.head;
            expect(head).toMatch(/^[0-9a-f]{40}$/);
            // Each container's verify step found the commit the skills repo's verify pushed, after a sync.
            for (const c of ["ada", "bob"]) expect(outputs.devContainers[c].verified.skills).toContain(`sparks-verify ${outputs.skillsRepo.verifyCommit}`);

            const health = await curl("/healthz");
            expect(health.code).toBe("200");
            expect(JSON.parse(health.body)).toEqual({ status: "ok", head });
            clone = path.join(checkout.dir, ".skills-clone");
            mustSucceed("clone", await run("git", ["clone", "-q", SKILLS_URL, clone]));
            expect(fs.readdirSync(clone).sort()).toEqual([".git", "README.md", "example-skill"]);
            expect(await git("log", "--format=%s")).toEqual({ code: 0, stdout: "The skills repo, with an example skill\n", stderr: "" });

            const listed = mustSucceed("skills list", await checkout.sparks("skills", "list", "--stack", "dev")).stdout;
            expect(listed).toMatch(/^SKILL +DESCRIPTION\nexample-skill +An example of the Agent Skills format/);
            const shown = mustSucceed("skills show", await checkout.sparks("skills", "show", "example-skill", "--stack", "dev")).stdout;
            expect(shown).toBe(fs.readFileSync(path.join(clone, "example-skill", "SKILL.md"), "utf8"));
            const missing = await checkout.sparks("skills", "show", "nope", "--stack", "dev");
            expect([missing.code, missing.stderr]).toEqual([1, `sparks: no skill "nope" on main of ${SKILLS_URL}\n`]);

            // Smart HTTP serves fetches only.
            const httpPush = await run("git", ["-C", clone, "push", SKILLS_URL, "HEAD:refs/heads/via-http"]);
            expect(httpPush.code).not.toBe(0);
            expect(await remoteMain()).toBe(head);
            // Every container has its clone in ~/skills.
            for (const c of [ADA, BOB]) expect(await devOk(c.address, "git -C skills rev-parse HEAD")).toBe(`${head}\n`);
        });

        test("a push over SSH with a push key reaches every container's ~/skills within a minute, by the timer alone", async () => {
            mustSucceed("skills new", await checkout.sparks("skills", "new", "release-notes", "--dir", clone));
            mustSucceed("skills validate", await checkout.sparks("skills", "validate", clone));
            await git("add", "-A");
            await git("commit", "-q", "-m", "release-notes");
            const pushed = (await git("rev-parse", "HEAD")).stdout.trim();
            const started = Date.now();
            await git("push", "-q", SKILLS_PUSH, "HEAD:main");
            expect(await remoteMain()).toBe(pushed);
            const arrived: Record<string, number> = {};
            while (Object.keys(arrived).length < 2) {
                for (const c of [ADA, BOB]) {
                    if (arrived[c.name] === undefined && (await asDev(c.address, "test -f skills/release-notes/SKILL.md")).code === 0) arrived[c.name] = Date.now() - started;
                }
                if (Date.now() - started > 60_000) throw new Error(`not synced within a minute: ${JSON.stringify(arrived)}`);
                await new Promise((r) => setTimeout(r, 500));
            }
            console.log(`skills: push to ~/skills in ada ${arrived.ada} ms, bob ${arrived.bob} ms (timer every 20 s)`);
            const synced = JSON.parse(mustSucceed("skills sync", await checkout.sparks("skills", "sync", "--stack", "dev", "--json")).stdout);
            expect(synced.map((r: { name: string; ok: boolean; head: string }) => [r.name, r.ok, r.head])).toEqual([["ada", true, pushed], ["bob", true, pushed]]);
            const listed = JSON.parse(mustSucceed("skills list", await checkout.sparks("skills", "list", "--url", SKILLS_URL, "--json")).stdout);
            expect(listed.skills.map((s: { name: string }) => s.name)).toEqual(["example-skill", "release-notes"]);
        });

        test("a push that breaks the format is refused, naming the file and what is wrong, and changes nothing", async () => {
            const before = await remoteMain();
            fs.mkdirSync(path.join(clone, "deploy-guide"));
            fs.writeFileSync(path.join(clone, "deploy-guide", "SKILL.md"), "---\nname: deploy\n---\nSteps.\n");
            await git("add", "-A");
            await git("commit", "-q", "-m", "a broken skill");
            const refused = await run("git", ["-C", clone, "push", SKILLS_PUSH, "HEAD:main"], { env: pushEnv() });
            expect(refused.code).not.toBe(0);
            expect(refused.stderr).toContain("remote:   deploy-guide/SKILL.md: 'name' is 'deploy' but the folder is 'deploy-guide': they must be the same");
            expect(refused.stderr).toContain("remote:   deploy-guide/SKILL.md: 'description' is missing (what the skill does and when to use it)");
            expect(refused.stderr).toContain("pre-receive hook declined");
            expect(await remoteMain()).toBe(before);
            // History is not rewritten either: a forced push of an older commit is refused.
            const forced = await run("git", ["-C", clone, "push", "-f", SKILLS_PUSH, "HEAD~2:main"], { env: pushEnv() });
            expect(forced.code).not.toBe(0);
            expect(await remoteMain()).toBe(before);
            await git("reset", "-q", "--hard", "HEAD~1");
        });

        test("a push key gets git and nothing else, a key not in config cannot push, and /healthz fails when the repo cannot be read", async () => {
            const shell = await run("ssh", ["-i", pusherKey, "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes",
                "-o", `UserKnownHostsFile=${path.join(checkout.dir, ".known_hosts.spark-1")}`, "sparks-skills@10.89.42.11", "id"]);
            expect([shell.code, shell.stderr.trim()]).toEqual([1, "spark-skills serve-ssh: only git push and fetch of skills.git are served here (sparks-skills@HOST:skills.git), not 'id'"]);
            const stranger = await run("git", ["-C", clone, "push", SKILLS_PUSH, "HEAD:refs/heads/stranger"], {
                env: { ...pushEnv(), GIT_SSH_COMMAND: pushEnv().GIT_SSH_COMMAND.replace(pusherKey, ownerKey) },
            });
            expect([stranger.code !== 0, stranger.stderr]).toEqual([true, expect.stringContaining("sparks-skills@10.89.42.11: Permission denied (publickey")]);
            await onSpark1("chmod 0700 /srv/sparks/skills/skills.git");
            try {
                const failing = await curl("/healthz");
                expect(failing.code).toBe("503");
                expect(JSON.parse(failing.body)).toMatchObject({ status: "failing", error: expect.stringContaining("the repo cannot be read") });
            } finally {
                await onSpark1("chmod 0755 /srv/sparks/skills/skills.git");
            }
            expect((await curl("/healthz")).code).toBe("200");
        });
    });

    test("a service on 8080 inside is reached at the container's address", async () => {
        // As dev, a web server of the container's own, left running after the session ends.
        const pid = (await devOk(ADA.address, "mkdir -p site && echo 'hello from ada' > site/index.html && " +
            "{ setsid nohup python3 -m http.server 8080 --directory site >/dev/null 2>&1 < /dev/null & echo $!; }")).trim();
        expect(pid).toMatch(/^\d+$/);
        let body = "";
        for (const deadline = Date.now() + 20_000; !body.includes("hello");) {
            body = (await run("curl", ["-fsS", "--max-time", "2", `http://${ADA.address}:8080/`])).stdout;
            if (Date.now() > deadline) throw new Error(`no answer on ${ADA.address}:8080`);
            if (!body.includes("hello")) await new Promise((r) => setTimeout(r, 300));
        }
        expect(body).toBe("hello from ada\n");
        // bob's address does not answer for ada's service.
        expect((await run("curl", ["-fsS", "--max-time", "2", `http://${BOB.address}:8080/`])).code).not.toBe(0);
        await devOk(ADA.address, `kill ${pid}`);
    });

    test("a KVM guest boots as dev, inside the container", async () => {
        const probe = fs.readFileSync(path.join(checkout.dir, "host", "libexec", "spark-dev-kvm-probe"), "utf8");
        for (const c of [ADA, BOB]) {
            expect(await devOk(c.address, "python3 -", probe)).toMatch(/^kvm guest: sparks kvm guest ok [0-9a-f]{8} \(\d+ exits/);
        }
        // The device is the container's own node: root:kvm 0660 inside, where dev is in kvm.
        expect(await devOk(ADA.address, "stat -c '%A %U %G' /dev/kvm; id -Gn")).toMatch(/^crw-rw---- root kvm\n.*\bkvm\b/);
    });

    test("ssh -t NAME tmux shows the terminal's size and follows a resize", async () => {
        // A pty of 40x120 around ssh -t, then resized to 50x150: tmux inside must show both (less
        // the line of its status bar).
        const script = `
import os, pty, sys, time, fcntl, termios, struct, select
def size(fd, rows, cols): fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
pid, fd = pty.fork()
if pid == 0:
    os.environ["TERM"] = "xterm-256color"
    os.execvp("ssh", ["ssh", "-t"] + sys.argv[1:])
size(fd, 40, 120)
seen, want, deadline = b"", [b"39 120", b"49 150"], time.time() + 60
while want and time.time() < deadline:
    r, _, _ = select.select([fd], [], [], 0.5)
    if r:
        try: seen += os.read(fd, 65536)
        except OSError: break
    if want[0] in seen.replace(b"\\x1b", b" "):
        print("saw", want.pop(0).decode(), flush=True)
        if want: size(fd, 50, 150); os.kill(pid, 28)
os.kill(pid, 9)
sys.exit(0 if not want else 1)
`;
        const result = await run("python3", ["-c", script, ...sshArgs(ADA.address, SIZE_LOOP)], { timeoutMs: 90_000 });
        expect(result.stdout).toBe("saw 39 120\nsaw 49 150\n");
    });

    test("stop and start keep the home", async () => {
        await devOk(ADA.address, "echo kept-across-stop > notes.txt");
        const bootBefore = await devOk(ADA.address, "cat /proc/1/stat | cut -d' ' -f22");
        expect(await sparkDev("stop ada")).toMatchObject({ state: "stopped" });
        expect((await asDev(ADA.address, "true")).code).not.toBe(0);
        const started = await sparkDev("start ada");
        expect(started).toMatchObject({ state: "running" });
        expect(await devOk(ADA.address, "cat notes.txt")).toBe("kept-across-stop\n");
        expect(await devOk(ADA.address, "cat /proc/1/stat | cut -d' ' -f22")).not.toBe(bootBefore);
        await checkout.verifyGreen();
    });

    test("idle stop: a container with no SSH session is stopped after its idle minutes", async () => {
        // bob gets an idle stop of 1 minute now (in place: only until here do the tests need it
        // running); its verify step's session is its last.
        setContainers([container(ADA, { packages: ["jq"] }), container(BOB, { keepHome: false, idleStopMinutes: 1 })]);
        mustSucceed("up", await checkout.up());
        expect((await sparkDev("status bob")).idle_minutes).toBe(1);
        for (const deadline = Date.now() + 200_000; ;) {
            if ((await sparkDev("status bob")).state === "stopped") break;
            if (Date.now() > deadline) throw new Error("bob was not stopped within 200 s of idling");
            await new Promise((r) => setTimeout(r, 5000));
        }
        expect((await sparkDev("status ada")).state).toBe("running");
        expect((await sparkDev("start bob")).state).toBe("running");
    });

    test("a host that restarts starts its containers again", async () => {
        await devOk(ADA.address, "echo kept-across-reboot >> notes.txt");
        // The host powers off; the next up boots it (it is a lab machine the stack made).
        await checkout.onHostResult("spark-1", "systemctl poweroff --no-block");
        for (const deadline = Date.now() + 60_000; ;) {
            if ((await checkout.labHosts()).find((h) => h.name === "spark-1")?.state === "stopped") break;
            if (Date.now() > deadline) throw new Error("spark-1 did not stop within 60 s of poweroff");
            await new Promise((r) => setTimeout(r, 200));
        }
        mustSucceed("up", await checkout.up());
        for (const c of [ADA, BOB]) expect(await devOk(c.address, "systemctl is-system-running --wait || true")).toMatch(/^(running|degraded)\n$/);
        expect(await devOk(ADA.address, "cat notes.txt")).toBe("kept-across-stop\nkept-across-reboot\n");
        await checkout.verifyGreen();
    });

    test("packages and limits change in place: no new root, no restart", async () => {
        const init = await devOk(ADA.address, "cat /proc/1/stat | cut -d' ' -f22");
        setContainers([container(ADA, { packages: ["tree"], cpus: 1, memoryMb: 768 }), container(BOB, { keepHome: false, idleStopMinutes: 1 })]);
        const steps = mustSucceed("preview", await checkout.pulumi("preview", "--json"));
        const changed = JSON.parse(steps.stdout).steps.filter((s: { op: string }) => s.op !== "same").map((s: { op: string; urn: string }) => `${s.op} ${s.urn.split("::").pop()}`).sort();
        expect(changed).toEqual(["update ada-dev", "update ada-dev-verify"]);
        mustSucceed("up", await checkout.up());
        expect(await devOk(ADA.address, "cat /proc/1/stat | cut -d' ' -f22")).toBe(init);
        expect(await devOk(ADA.address, "tree --version >/dev/null && echo tree; command -v jq || echo no-jq")).toBe("tree\nno-jq\n");
        expect(await onSpark1("systemctl show -P MemoryMax spark-dev@ada; systemctl show -P CPUQuotaPerSecUSec spark-dev@ada"))
            .toBe(`${768 * 1024 * 1024}\n1s\n`);
        // In force where the host's cgroups have the memory controller (a lab host's have none:
        // the machine keeps its controllers in cgroup v1); configured above either way.
        const enforced = await onSpark1("grep -qw memory /sys/fs/cgroup/machine.slice/cgroup.controllers && cat '/sys/fs/cgroup/machine.slice/spark-dev@ada.service/memory.max' || echo not-enforced-here");
        expect([`${768 * 1024 * 1024}\n`, "not-enforced-here\n"]).toContain(enforced);
    });

    test("a new base image re-creates the containers' roots and keeps their homes", async () => {
        const imageBefore = (await sparkDev("status ada")).image;
        await devOk(ADA.address, "echo kept-across-recreation >> notes.txt");
        // A changed recipe is a new image: the next up builds it and moves the containers to it.
        fs.appendFileSync(path.join(checkout.dir, "host", "share", "spark-dev", "image-recipe"), "# a new image for the test\n");
        mustSucceed("up", await checkout.up());
        const status = await sparkDev("status ada");
        expect(status.image).not.toBe(imageBefore);
        expect(status.packages).toEqual(["tree"]);
        await pinContainerKeys();
        expect(await devOk(ADA.address, "cat notes.txt; tree --version >/dev/null && echo tree")).toBe("kept-across-stop\nkept-across-reboot\nkept-across-recreation\ntree\n");
        const images = await onSpark1("ls /srv/sparks/dev/images");
        expect(images.trim().split("\n")).toEqual([status.image]);
    });

    describe("spark-dev itself, on the same host", () => {
        // The tool's own edges, on spark-1 with its base image (sharing this suite's lab saves a
        // lab, a host set-up and an image build).
        const sh = (command: string, input?: string) => checkout.onHostResult("spark-1", command, input);
        const refused = async (args: string, input?: string) => refusal(await sh(`spark-dev ${args}`, input));
        /** What exists of container NAME on the host: its directory's entries, unit state, veth. */
        const traces = (name: string) => onSpark1(
            `ls -A ${DEV_ROOT}/${name} 2>/dev/null | paste -sd' '; systemctl is-active spark-dev@${name} || true; ip -o link show ve-${name} 2>/dev/null | wc -l`);
        let image: string;
        beforeAll(async () => { image = (await sparkDev("status ada")).image; });

        test("bad input is refused, naming the option and the value, before anything is made", async () => {
            expect(await refused("create Bad_Name --address 10.89.42.210")).toBe(
                "spark-dev create: invalid container name 'Bad_Name' (want ^[a-z][a-z0-9-]{0,10}[a-z0-9]$: at most 12 characters)");
            expect(await refused("create ok --address 10.89.42.999")).toBe("spark-dev create: --address must be an IPv4 address, not '10.89.42.999'");
            expect(await refused("create ok --address 10.89.42.210 --packages 'jq;reboot'")).toBe("spark-dev create: invalid package name 'jq;reboot'");
            expect(await refused("create ok --address 10.89.42.210 --cpus 0")).toBe("spark-dev create: --cpus must be a whole number from 1 to 256, not '0'");
            expect(await refused("create ok --address 10.89.42.210 --keys-stdin", "not a key\n")).toBe("spark-dev create: line 1 of the keys on stdin is not an SSH public key");
            expect(await refused("create ok --address 10.89.42.11")).toBe("spark-dev create: address 10.89.42.11 is already taken (by another container or this host)");
            expect(await refused(`create ok --address ${ADA.address}`)).toBe(`spark-dev create: address ${ADA.address} is already taken (by another container or this host)`);
            expect(await refused("create ok --address 10.89.42.210 --image bookworm-0000000000000000")).toBe("spark-dev create: no image 'bookworm-0000000000000000' (see spark-dev image)");
            expect(await refused("status nope")).toBe("spark-dev status: no container named 'nope'");
            expect(await traces("ok")).toBe("\ninactive\n0\n");
        });

        test("a first create that fails leaves nothing behind", async () => {
            expect(await refused("create cy --address 10.89.42.213 --owner t/cy --packages no-such-package-xyz"))
                .toMatch(/^spark-dev create: could not install no-such-package-xyz in 'cy': E: Unable to locate package no-such-package-xyz/);
            expect(await traces("cy")).toBe("\ninactive\n0\n");
        });

        test.each(["root", "started"])("a create killed at step %s leaves what a create again converges on, and destroy removes", async (step) => {
            const killed = await sh(`SPARK_DEV_FAULT=${step} spark-dev create kk --address 10.89.42.214 --owner t/kk --image ${image} >/dev/null 2>&1; echo "status=$?"`);
            expect(killed.stdout).toMatch(/status=137/);
            expect(await sparkDev(`create kk --address 10.89.42.214 --owner t/kk --image ${image}`)).toMatchObject({ name: "kk", state: "running" });
            await onSpark1("spark-dev verify kk");
            await sparkDev("destroy kk");
            expect(await traces("kk")).toBe("\ninactive\n0\n");
        });

        test("root inside a container cannot make the host follow a planted symlink, nor keep a subvolume from being deleted", async () => {
            await sparkDev(`create dee --address 10.89.42.215 --owner t/dee --image ${image}`);
            const homeId = (await sparkDev("verify dee")).home;
            await onSpark1("printf 'precious\\n' > /etc/sparks-victim && chmod 0600 /etc/sparks-victim");
            // Root inside (dev has sudo) replaces the home's ID file with a symlink to a host path,
            // and makes a subvolume of its own inside its root.
            await onSpark1("spark-dev enter dee sudo sh -c 'ln -sf /etc/sparks-victim /home/dev/.spark-dev-home-id && btrfs subvolume create /var/lib/mine >/dev/null || mkdir -p /var/lib/mine'");
            expect(await refused("verify dee")).toMatch(/^spark-dev verify: the home in 'dee' is not the one made for it/);
            await sparkDev("destroy dee --keep-home");
            // Taken up again: the symlink is not followed (the host file is untouched and never read
            // into the ID), the home gets a fresh ID, and the old root with its subvolume is gone.
            await sparkDev(`create dee --address 10.89.42.215 --owner t/dee --image ${image}`);
            expect(await onSpark1("cat /etc/sparks-victim; stat -c %a /etc/sparks-victim; rm /etc/sparks-victim")).toBe("precious\n600\n");
            const again = await sparkDev("verify dee");
            expect(again.home).not.toBe(homeId);
            expect(again.home).toMatch(/^[0-9a-f-]{36}$/);
            await sparkDev("destroy dee");
            expect(await onSpark1("btrfs subvolume list /srv/sparks | awk '{print $NF}' | grep '^dev/dee' || true")).toBe("");
        });

        test("a container made by another owner is refused and left as it is", async () => {
            expect(await refused(`create ada --address ${ADA.address} --owner t/eve --image ${image}`))
                .toBe("spark-dev create: 'ada' exists and was made by sparks/dev/ada, not t/eve; destroy it first");
            expect((await sparkDev("status ada")).state).toBe("running");
        });

        test("help lists every verb with its summary, and each verb's usage", async () => {
            const help = await onSpark1("spark-dev help");
            for (const verb of ["create", "destroy", "enter", "idle", "image", "kvm-probe", "list", "start", "status", "stop", "verify"]) {
                expect(help).toMatch(new RegExp(`^  ${verb} +\\S`, "m"));
            }
            expect(await onSpark1("spark-dev help create")).toMatch(/^Usage: spark-dev create NAME --address IPV4/);
            expect(await refused("frobnicate")).toBe("spark-dev: no such verb 'frobnicate' (see 'spark-dev help')");
        });
    });

    test("a host without usable /dev/kvm fails its container's verify, naming the container and the cause", async () => {
        // The host's /dev/kvm is the lab's bind mount of the machine's: unmounted, there is none.
        // (ada and bob keep theirs: each has its own node.)
        mustSucceed("no kvm", await checkout.onHostResult("spark-1", "umount /dev/kvm && test ! -c /dev/kvm"));
        setContainers([container(ADA, { packages: ["tree"], cpus: 1, memoryMb: 768 }), container(BOB, { keepHome: false, idleStopMinutes: 1 }),
            container({ name: "cy", host: "spark-1", address: "10.89.42.203" }, { keepHome: false })]);
        const up = await checkout.up();
        expect(up.code).not.toBe(0);
        expect(up.stdout + up.stderr).toMatch(/spark-dev verify: no KVM guest runs in 'cy' as dev: spark-dev kvm-probe: \/dev\/kvm is missing: this host has no usable KVM/);
        expect(await devOk(ADA.address, "python3 -", fs.readFileSync(path.join(checkout.dir, "host", "libexec", "spark-dev-kvm-probe"), "utf8")))
            .toMatch(/^kvm guest: sparks kvm guest ok/);
    });

    test("removed from config: nothing left running, no units, no subvolumes, but the home and the skills repo's data kept", async () => {
        const skillsHead = (await run("git", ["ls-remote", SKILLS_URL, "refs/heads/main"])).stdout.split("\t")[0];
        expect(skillsHead).toMatch(/^[0-9a-f]{40}$/);
        checkout.editConfig((config) => {
            skillsRepoConfig = config["sparks:skillsRepo"];
            delete config["sparks:skillsRepo"];
            config["sparks:devContainers"] = [];
        });
        mustSucceed("up", await checkout.up());
        const left = await onSpark1([
            "systemctl list-units --all --plain --no-legend 'spark-dev@*' | awk '{print $1}'",
            // The template unit stays with the tools; no container's drop-in or enablement does.
            "ls /etc/systemd/system /etc/systemd/system/multi-user.target.wants | grep '^spark-dev@[a-z]' || true",
            "ps -eo comm | grep -x systemd-nspawn || true",
            "btrfs subvolume list /srv/sparks | awk '{print $NF}' | grep -E '^(dev/|skills$)' | sort || true",
        ].join("; echo --; "));
        const [units, unitFiles, nspawns, subvolumes] = left.split("--\n").map((part) => part.trim());
        expect({ units, unitFiles, nspawns }).toEqual({ units: "", unitFiles: "", nspawns: "" });
        // ada's home is kept (keepHome defaults to true), bob's and cy's are not; no image stays;
        // the skills repo's subvolume stays (keepData defaults to true).
        expect(subvolumes).toBe("dev/ada/home\nskills");
        expect(await onSpark1("cat /srv/sparks/dev/ada/home/notes.txt")).toBe("kept-across-stop\nkept-across-reboot\nkept-across-recreation\n");
        // The skills repo is not served any more (nothing on 8080, no unit, no push keys); its history stays.
        expect((await run("curl", ["-sS", "--max-time", "5", "http://10.89.42.11:8080/healthz"])).code).not.toBe(0);
        expect(await onSpark1("systemctl is-enabled spark-skills-http 2>&1 || true; test -e /var/lib/sparks-skills/.ssh/authorized_keys || echo no-keys; " +
            "runuser -u sparks-skills -- git --git-dir=/srv/sparks/skills/skills.git rev-parse main"))
            .toMatch(new RegExp(`^(not-found|disabled|Failed to get unit file state.*)\nno-keys\n${skillsHead}\n$`));
    });

    test("the skills repo put back in config adopts the kept repo: the same history, served again", async () => {
        const head = await onSpark1("runuser -u sparks-skills -- git --git-dir=/srv/sparks/skills/skills.git rev-parse main");
        checkout.editConfig((config) => { config["sparks:skillsRepo"] = skillsRepoConfig; });
        mustSucceed("up", await checkout.up());
        expect(`${(await run("git", ["ls-remote", SKILLS_URL, "refs/heads/main"])).stdout.split("\t")[0]}\n`).toBe(head);
        expect(JSON.parse(mustSucceed("outputs", await checkout.pulumi("stack", "output", "--json", "skillsRepo")).stdout).head).toBe(head.trim());
    });
});
