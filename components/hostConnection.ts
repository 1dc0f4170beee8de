// How the deployment reaches a host: the SSH connection every remote command uses, behind a
// readiness gate that waits for sshd and checks the pinned host key before anything runs.
import * as pulumi from "@pulumi/pulumi";
import * as command from "@pulumi/command";
import { HostSpec, SshKey, SshSettings } from "./config";
import { shellQuote } from "./shell";

/**
 * Waits (bounded, with backoff: 1, 2, 4, ... s) until the host presents an SSH host key, then
 * fails the run with a clear message if it is not the pinned one. pulumi-command's own
 * `hostKey` check then guards every connection; this gate is what turns "down" and "wrong key"
 * into messages that name the host and say what to do.
 *
 * It runs during `up` only: previews never contact hosts (prod's preview must stay offline).
 */
function readyAddress(host: HostSpec, attempts: number): pulumi.Output<string> {
    if (pulumi.runtime.isDryRun()) return pulumi.output(host.address);
    const keyType = host.hostKey.split(" ")[0];
    const probe = [
        `for attempt in $(seq 1 ${attempts}); do`,
        `  if key=$(ssh-keyscan -T 5 -p ${host.port} -t ${keyType} ${shellQuote(host.address)} 2>/dev/null) && [ -n "$key" ]; then`,
        `    printf '%s\\n' "$key"; exit 0`,
        `  fi`,
        `  [ "$attempt" -lt ${attempts} ] && sleep $((1 << (attempt - 1)))`,
        `done`,
        // Not answering is a verdict for the gate to word, not a failed invoke.
        `exit 0`,
    ].join("\n");
    return command.local.runOutput({ command: probe }).apply((result) => {
        const failure = gateFailure(host, attempts, result.stdout);
        if (failure !== undefined) throw new pulumi.RunError(failure);
        return host.address;
    });
}

/** Why the gate refuses a host, given what ssh-keyscan printed ("" when it never answered). */
export function gateFailure(host: HostSpec, attempts: number, keyscanOutput: string): string | undefined {
    const where = `host ${host.name} (${host.address}:${host.port})`;
    const line = keyscanOutput.trim();
    if (line === "") {
        return `${where} did not answer ssh after ${attempts} attempts: check that it is up and reachable, then run \`pulumi up\` again`;
    }
    const presented = line.split(/\s+/).slice(-2).join(" ");
    if (presented !== host.hostKey) {
        return `${where} presented host key ${presented}, not the pinned ${host.hostKey}: refusing to connect. ` +
            `If the server was rebuilt, pin its new key (read on the server: cut -d' ' -f1,2 /etc/ssh/ssh_host_${hostKeyFileType(host.hostKey)}_key.pub); otherwise treat this as an attack`;
    }
    return undefined;
}

/** The type part of sshd's host key file name (ssh_host_TYPE_key.pub) for a pinned key. */
function hostKeyFileType(hostKey: string): string {
    const algorithm = hostKey.split(" ")[0];
    if (algorithm.startsWith("ecdsa-")) return "ecdsa";
    return algorithm.replace(/^ssh-/, "");
}

/** The connection for every remote command on `host`. */
export function hostConnection(host: HostSpec, ssh: SshSettings, privateKey: SshKey): command.types.input.remote.ConnectionArgs {
    return {
        host: readyAddress(host, ssh.connectAttempts),
        port: host.port,
        user: host.user,
        hostKey: host.hostKey,
        privateKey,
        // The gate above already waited for the host; a short retry covers a blip after it.
        dialErrorLimit: 3,
        perDialTimeout: 10,
    };
}
