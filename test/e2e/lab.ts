// The local lab, as the end-to-end tests use it: bring hosts up and down, and reach them over
// ssh with their pinned host keys (StrictHostKeyChecking: a test never trusts a key blindly).
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { LabHost, sshArgs, writeKnownHosts } from "../lab/labClient";
import { mustSucceed, ROOT, run, RunResult } from "./stack";

export type { LabHost };

const LAB = path.join(ROOT, "lab", "sparks-lab");

/** Runs a lab verb; `labDir` picks a lab other than the checkout's own `.lab` (SPARKS_LAB_DIR). */
async function lab(args: string[], labDir?: string): Promise<RunResult> {
    const env = labDir === undefined ? process.env : { ...process.env, SPARKS_LAB_DIR: labDir };
    return mustSucceed(`sparks-lab ${args.join(" ")}`, await run(LAB, args, { env, timeoutMs: 10 * 60 * 1000 }));
}

export async function labUp(count: number, labDir?: string): Promise<LabHost[]> {
    await lab(["up", String(count)], labDir);
    return labStatus(labDir);
}

export async function labDown(labDir?: string): Promise<void> {
    await lab(["down"], labDir);
}

export async function labStatus(labDir?: string): Promise<LabHost[]> {
    return JSON.parse((await lab(["status", "--json"], labDir)).stdout);
}

// Pinned host keys go in a directory only this process made: a fixed name in /tmp could be planted.
let knownHostsDir: string | undefined;

/** Runs `command` on a lab host as root; rejects on a non-zero exit. */
export async function onHost(host: LabHost, command: string): Promise<string> {
    if (knownHostsDir === undefined) {
        const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sparks-known-hosts-"));
        process.once("exit", () => fs.rmSync(dir, { recursive: true, force: true }));
        knownHostsDir = dir;
    }
    const knownHosts = path.join(knownHostsDir, host.name);
    writeKnownHosts(knownHosts, [host]);
    return mustSucceed(`on ${host.name}: ${command}`, await run("ssh", sshArgs(host, knownHosts, command))).stdout;
}

/** Takes a host off the network (its links inside its namespace), or puts it back. */
export async function setHostReachable(host: LabHost, reachable: boolean): Promise<void> {
    const namespace = `sparks-${host.name}`;
    const links: { ifname: string }[] = JSON.parse((await run("ip", ["-n", namespace, "-j", "link", "show"])).stdout);
    for (const { ifname } of links.filter((l) => l.ifname !== "lo")) {
        mustSucceed(`ip link set ${ifname} in ${namespace}`,
            await run("ip", ["-n", namespace, "link", "set", ifname.split("@")[0], reachable ? "up" : "down"]));
    }
}
