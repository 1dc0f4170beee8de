// Pinned host keys against stock servers: lab hosts serve RSA, ECDSA and ed25519 host keys, as a
// Debian sshd does, and the stack pins each type in turn. The command provider must negotiate the
// pinned key's algorithm (a Go SSH client otherwise picks ECDSA first and reports a mismatch), and
// re-pinning the same server under another key type is a routine update. A wrong key of each
// type is still refused. An RSA key is refused by the config check before anything runs: upstream
// pulumi-command asks for its SHA-1 "ssh-rsa" signatures only, which a stock bookworm sshd
// (OpenSSH 9.2) does not offer, so no `up` could connect with it.
import * as fs from "fs";
import * as path from "path";
import { LabHost, labDown, labUp } from "./lab";
import { mustSucceed, ROOT, TestStack } from "./stack";

jest.setTimeout(10 * 60 * 1000);

const KEY_TYPES = ["ecdsa", "ed25519"];

describe("pinned host keys of every type on stock sshd hosts", () => {
    let hosts: LabHost[];
    let stack: TestStack;

    function pinConfig(type: string, hostKey?: string): Record<string, unknown> {
        return {
            "sparks:ssh": { privateKeyFile: path.relative(ROOT, hosts[0].privateKeyFile), connectAttempts: 3 },
            "sparks:pool": { device: "/dev/vdb" },
            "sparks:hosts": [hostKey === undefined
                ? { name: hosts[0].name, address: hosts[0].address, hostKeyFile: path.relative(ROOT, hosts[0].hostKeyFiles[type]) }
                : { name: hosts[0].name, address: hosts[0].address, hostKey }],
        };
    }

    beforeAll(async () => {
        hosts = await labUp(2);
        stack = await TestStack.create("hostkeys", pinConfig("ed25519"), { program: path.join(__dirname, "programs", "hostkeys") });
        fs.symlinkSync(path.join(ROOT, ".lab"), path.join(stack.dir, ".lab"));
    });

    afterAll(async () => {
        if (stack) {
            await stack.destroy();
            await stack.remove();
        }
        await labDown();
    });

    test.each(KEY_TYPES)("up with the host's %s key pinned reaches the host", async (type) => {
        stack.setConfig(pinConfig(type));
        mustSucceed(`pulumi up (${type} pinned)`, await stack.up());
        expect((await stack.outputs()).hostnames).toEqual({ [hosts[0].name]: hosts[0].name });
    });

    test("the host's own RSA key is refused before anything runs, saying which keys to pin", async () => {
        stack.setConfig(pinConfig("rsa"));
        const result = await stack.up();
        expect(result.code).not.toBe(0);
        expect(result.stdout + result.stderr).toContain(
            `sparks:hosts[0].hostKeyFile: "${path.relative(ROOT, hosts[0].hostKeyFiles.rsa)}" is an RSA host key, which the command provider ` +
            'verifies only with SHA-1 signatures ("ssh-rsa") that OpenSSH 8.8 and later refuse; pin the host\'s ed25519 or ECDSA key instead');
        // The resources of the last good up are still there, unchanged.
        expect((await stack.outputs()).hostnames).toEqual({ [hosts[0].name]: hosts[0].name });
    });

    test.each(KEY_TYPES)("a %s key that is not the host's is refused", async (type) => {
        // The other host's key of the same type: well-formed, same algorithm, not this server.
        const wrong = fs.readFileSync(hosts[1].hostKeyFiles[type], "utf8").trim().split(" ").slice(0, 2).join(" ");
        stack.setConfig(pinConfig(type, wrong));
        const result = await stack.up();
        expect(result.code).not.toBe(0);
        expect(result.stdout + result.stderr).toContain(`presented host key ${wrong.split(" ")[0]} `);
        expect(result.stdout + result.stderr).toContain(`not the pinned ${wrong}: refusing to connect`);
    });
});
