// The local lab, as the end-to-end tests use it: bring hosts up and down, and reach them over
// ssh with their pinned host keys (StrictHostKeyChecking: a test never trusts a key blindly).
import * as os from "os";
import * as path from "path";
import { LabHost, sshArgs, writeKnownHosts } from "../lab/labClient";
import { ROOT, run, RunResult } from "./stack";

export { LabHost };

const LAB = path.join(ROOT, "lab", "sparks-lab");

async function lab(args: string[]): Promise<RunResult> {
    const result = await run(LAB, args, { timeoutMs: 10 * 60 * 1000 });
    if (result.code !== 0) throw new Error(`sparks-lab ${args.join(" ")} failed (${result.code}):\n${result.stderr}`);
    return result;
}

export async function labUp(count: number): Promise<LabHost[]> {
    await lab(["up", String(count)]);
    return labStatus();
}

export async function labDown(): Promise<void> {
    await lab(["down"]);
}

export async function labStatus(): Promise<LabHost[]> {
    return JSON.parse((await lab(["status", "--json"])).stdout);
}

/** Runs `command` on a lab host as root; rejects on a non-zero exit. */
export async function onHost(host: LabHost, command: string): Promise<string> {
    const knownHosts = path.join(os.tmpdir(), `sparks-known-hosts-${host.name}`);
    writeKnownHosts(knownHosts, [host]);
    const result = await run("ssh", sshArgs(host, knownHosts, command));
    if (result.code !== 0) throw new Error(`on ${host.name}: \`${command}\` failed (${result.code}):\n${result.stderr}`);
    return result.stdout;
}

/** Takes a host off the network (its links inside its namespace), or puts it back. */
export async function setHostReachable(host: LabHost, reachable: boolean): Promise<void> {
    const namespace = `sparks-${host.name}`;
    const links: { ifname: string }[] = JSON.parse((await run("ip", ["-n", namespace, "-j", "link", "show"])).stdout);
    for (const { ifname } of links.filter((l) => l.ifname !== "lo")) {
        const result = await run("ip", ["-n", namespace, "link", "set", ifname.split("@")[0], reachable ? "up" : "down"]);
        if (result.code !== 0) throw new Error(`ip link set ${ifname} in ${namespace}: ${result.stderr}`);
    }
}
