// spark-dev on a real lab host, against what its users can do: bad input refused before anything
// changes; a container's own root (dev has sudo inside) planting symlinks in its home and making
// subvolumes in its root; a create killed at every step; a first create that fails leaving
// nothing, and a kept home surviving that; verify failing by name when KVM or the home is wrong.
import { refusal, SparkPgHost, sparkPgHost } from "./labHost";

jest.setTimeout(30 * 60 * 1000);

const ROOT = "/srv/sparks/dev";
const CREATE_STEPS = ["root", "started"];

describe("spark-dev on a lab host", () => {
    let host: SparkPgHost;
    let image: string;

    /** spark-dev ARGS expected to fail: returns its one stderr line. */
    async function refused(args: string, input?: string): Promise<string> {
        return refusal(await host.sh(`spark-dev ${args}`, input));
    }
    const dev = async (args: string, input?: string) => JSON.parse(await host.ok(`spark-dev ${args} --json`, input));
    /** What exists of container NAME on the host: its directory's entries, unit state, veth. */
    const traces = (name: string) => host.ok(
        `ls -A ${ROOT}/${name} 2>/dev/null | paste -sd' '; systemctl is-active spark-dev@${name} || true; ip -o link show ve-${name} 2>/dev/null | wc -l`);

    beforeAll(async () => {
        host = await sparkPgHost({ SPARK_PG_PORTS: "5432-5460" }, ["systemd-container", "mmdebstrap", "python3"]);
        image = (await dev("image")).image;
    });

    afterAll(async () => {
        await host?.down();
    });

    test("bad input is refused, naming the option and the value, before anything is made", async () => {
        expect(await refused("create Bad_Name --address 10.89.42.201")).toBe(
            "spark-dev create: invalid container name 'Bad_Name' (want ^[a-z][a-z0-9-]{0,10}[a-z0-9]$: at most 12 characters)");
        expect(await refused("create ok --address 10.89.42.999")).toBe("spark-dev create: --address must be an IPv4 address, not '10.89.42.999'");
        expect(await refused("create ok --address 10.89.42.201 --packages 'jq;reboot'")).toBe("spark-dev create: invalid package name 'jq;reboot'");
        expect(await refused("create ok --address 10.89.42.201 --cpus 0")).toBe("spark-dev create: --cpus must be a whole number from 1 to 256, not '0'");
        expect(await refused("create ok --address 10.89.42.201 --keys-stdin", "not a key\n")).toBe("spark-dev create: line 1 of the keys on stdin is not an SSH public key");
        expect(await refused("create ok --address 10.89.42.11")).toBe("spark-dev create: address 10.89.42.11 is already taken (by another container or this host)");
        expect(await refused("create ok --address 10.89.42.201 --image bookworm-0000000000000000")).toBe("spark-dev create: no image 'bookworm-0000000000000000' (see spark-dev image)");
        expect(await refused("status nope")).toBe("spark-dev status: no container named 'nope'");
        expect(await host.ok(`ls -A ${ROOT} | grep -v -e images -e verify_key || true`)).toBe("");
    });

    test("a first create that fails leaves nothing behind", async () => {
        expect(await refused("create cy --address 10.89.42.203 --owner t/cy --packages no-such-package-xyz"))
            .toMatch(/^spark-dev create: could not install no-such-package-xyz in 'cy': E: Unable to locate package no-such-package-xyz/);
        expect(await traces("cy")).toBe("\ninactive\n0\n");
    });

    test.each(CREATE_STEPS)("a create killed at step %s leaves what destroy removes, and a create again works", async (step) => {
        const killed = await host.sh(`SPARK_DEV_FAULT=${step} spark-dev create kk --address 10.89.42.204 --owner t/kk --image ${image} >/dev/null 2>&1; echo "status=$?"`);
        expect(killed.stdout).toMatch(/status=137/);
        // The same create again converges on what the killed one left.
        expect(await dev(`create kk --address 10.89.42.204 --owner t/kk --image ${image}`)).toMatchObject({ name: "kk", state: "running" });
        await host.ok("spark-dev verify kk");
        await dev("destroy kk");
        expect(await traces("kk")).toBe("\ninactive\n0\n");
    });

    test("dev's root inside cannot make the host follow a planted symlink, nor keep a subvolume from being deleted", async () => {
        await dev(`create ada --address 10.89.42.201 --owner t/ada --image ${image}`);
        const homeId = (await dev("verify ada")).home;
        await host.ok("printf 'precious\\n' > /etc/sparks-victim && chmod 0600 /etc/sparks-victim");
        // Root inside the container (dev has sudo) replaces the home's ID file with a symlink to a
        // host path, and makes a subvolume of its own inside its root.
        await host.ok("spark-dev enter ada sudo sh -c 'ln -sf /etc/sparks-victim /home/dev/.spark-dev-home-id && btrfs subvolume create /var/lib/mine >/dev/null || mkdir -p /var/lib/mine'");
        // verify reads the home over SSH as dev: the ID is not the home's any more.
        expect(await refused("verify ada")).toMatch(/^spark-dev verify: the home in 'ada' is not the one made for it/);
        await dev("destroy ada --keep-home");
        // Taken up again: the symlink is not followed (the host file is untouched, never read
        // into the ID), the home gets a fresh ID, and the root with its subvolume is gone.
        await dev(`create ada --address 10.89.42.201 --owner t/ada --image ${image}`);
        expect(await host.ok("cat /etc/sparks-victim; stat -c %a /etc/sparks-victim")).toBe("precious\n600\n");
        const again = await dev("verify ada");
        expect(again.home).not.toBe(homeId);
        expect(again.home).toMatch(/^[0-9a-f-]{36}$/);
        await dev("destroy ada");
        expect(await host.ok(`btrfs subvolume list ${"/srv/sparks"} | awk '{print $NF}' | grep '^dev/ada' || true`)).toBe("");
    });

    test("a container of another owner is refused and left as it is", async () => {
        await dev(`create bob --address 10.89.42.202 --owner t/bob --image ${image}`);
        expect(await refused(`create bob --address 10.89.42.202 --owner t/eve --image ${image}`))
            .toBe("spark-dev create: 'bob' exists and was made by t/bob, not t/eve; destroy it first");
        expect((await dev("status bob")).state).toBe("running");
        await dev("destroy bob");
    });

    test("help lists every verb with its summary, and each verb's usage", async () => {
        const help = await host.ok("spark-dev help");
        for (const verb of ["create", "destroy", "enter", "idle", "image", "kvm-probe", "list", "start", "status", "stop", "verify"]) {
            expect(help).toMatch(new RegExp(`^  ${verb} +\\S`, "m"));
        }
        expect(await host.ok("spark-dev help create")).toMatch(/^Usage: spark-dev create NAME --address IPV4/);
        expect(await refused("frobnicate")).toBe("spark-dev: no such verb 'frobnicate' (see 'spark-dev help')");
    });
});
