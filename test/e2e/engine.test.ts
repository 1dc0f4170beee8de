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
                    { name: "spark;1", address: "10.89.42.11", port: 70000, hostKey: "ssh-ed25519 AAAA" },
                    { name: "spark-2", address: "10.89.42.12", port: "22", hostKey: "ssh-ed25519 AAAA" },
                    { name: "spark-2", address: "10.89.42.13", hostKey: "ssh-ed25519 AAAA" },
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
