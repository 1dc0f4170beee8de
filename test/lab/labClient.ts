// Lab hosts as the tests see them (`sparks-lab status --json`), and the one way tests ssh into
// them: the lab key, and a known_hosts that holds only the host keys the lab recorded, with
// StrictHostKeyChecking, so no test ever trusts a host key blindly.
import { execFileSync } from "child_process";
import * as fs from "fs";

export interface LabHost {
    name: string;
    address: string;
    port: number;
    user: string;
    state: string;
    /** The ed25519 host key, the one the dev stack pins. */
    hostKeyFile: string;
    /** Every host key sshd serves, by type (rsa, ecdsa, ed25519), as on a stock server. */
    hostKeyFiles: Record<string, string>;
    privateKeyFile: string;
    pid: number | null;
}

/** Writes a known_hosts file for `hosts` from their recorded host keys. */
export function writeKnownHosts(file: string, hosts: LabHost[]): void {
    const lines = hosts.map((h) => `${h.address} ${fs.readFileSync(h.hostKeyFile, "utf8").trim()}`);
    fs.writeFileSync(file, lines.join("\n") + "\n");
}

/** Arguments for `ssh` that run `command` on `host` as its lab user, pinned to `knownHostsFile`. */
export function sshArgs(host: LabHost, knownHostsFile: string, command: string): string[] {
    return [
        "-i", host.privateKeyFile, "-p", String(host.port),
        "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes",
        "-o", `UserKnownHostsFile=${knownHostsFile}`, "-o", "GlobalKnownHostsFile=/dev/null",
        "-o", "ConnectTimeout=10", "-o", "LogLevel=ERROR",
        `${host.user}@${host.address}`, command,
    ];
}

function statOrUndefined(file: string): fs.Stats | undefined {
    try {
        return fs.statSync(file);
    } catch {
        return undefined;
    }
}

const runText = (file: string, args: string[]) => execFileSync(file, args, { encoding: "utf8" });

/** The parts of the machine a lab in `labDir` touches. Other people's loop devices and mounts on
 *  this machine come and go, so those lists keep what can be the lab's: anything under the lab
 *  directory, network namespace files, and loop devices whose backing file is not the file of
 *  that name on the machine (a file inside a container). */
export function machineState(labDir: string) {
    const ownPidNamespace = fs.readlinkSync("/proc/self/ns/pid");
    const processes = fs.readdirSync("/proc").filter((p) => /^\d+$/.test(p)).flatMap((pid) => {
        try {
            if (/^State:\s+Z/m.test(fs.readFileSync(`/proc/${pid}/status`, "utf8"))) return []; // exited, not yet reaped
            const cmdline = fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").join(" ").trim();
            const inContainer = fs.readlinkSync(`/proc/${pid}/ns/pid`) !== ownPidNamespace;
            const labLike = /systemd-nspawn|TCP-LISTEN:.*bind=10\.89\.42\./.test(cmdline) || cmdline.includes(labDir);
            return inContainer || labLike ? [`${pid} ${cmdline}`] : [];
        } catch {
            return []; // exited while we looked
        }
    });
    const netns = runText("ip", ["netns", "list"]).split("\n").filter(Boolean).map((l) => l.split(" ")[0]);
    const links = (JSON.parse(runText("ip", ["-j", "link", "show"])) as { ifname: string }[]).map((l) => l.ifname);
    const loops = (JSON.parse(runText("losetup", ["-J", "-l", "-O", "NAME,BACK-FILE,BACK-INO"]) || '{"loopdevices":[]}')
        .loopdevices as { name: string; "back-file": string; "back-ino": string }[])
        .filter((l) => {
            const file = l["back-file"].replace(/ \(deleted\)$/, "");
            const onMachine = statOrUndefined(file);
            return file.startsWith(labDir + "/") || !onMachine || String(onMachine.ino) !== String(l["back-ino"]).trim();
        })
        .map((l) => `${l.name} ${l["back-file"]}`);
    const mounts = runText("findmnt", ["-rn", "-o", "TARGET,FSTYPE"]).split("\n")
        .filter((m) => m.startsWith(labDir + "/") || m.startsWith("/run/netns") || m.endsWith(" nsfs"));
    return { processes: processes.sort(), netns: netns.sort(), links: links.sort(), loops: loops.sort(), mounts: mounts.sort() };
}
