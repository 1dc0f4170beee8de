// Lab hosts as the tests see them (`sparks-lab status --json`), and the one way tests ssh into
// them: the lab key, and a known_hosts that holds only the host keys the lab recorded, with
// StrictHostKeyChecking, so no test ever trusts a host key blindly.
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
