// How the deployment reaches a host: the SSH connection every remote command uses, behind a gate
// that checks the pinned host key once per `up` before any command reaches the host.
import * as pulumi from "@pulumi/pulumi";
import * as command from "@pulumi/command";
import { HostSpec, SshKey, SshSettings, uriHost } from "./config";
import { shellQuote } from "./shell";

/** Seconds the gate waits for a host's sshd to answer: one probe, not a retry loop. */
const PROBE_TIMEOUT_SECONDS = 3;
/** Seconds each of the command provider's dial attempts may take. */
const PER_DIAL_TIMEOUT_SECONDS = 10;

/**
 * Asks the host once, quickly, for its host key of the pinned type. A different key fails the run
 * with a message that names the host and what to do (pulumi-command's own `hostKey` check would
 * only say "host key mismatch"). A host that does not answer is not an error here: one warning
 * names it, its resources with nothing to change go ahead without contacting it, and those that
 * do change fail in the command provider after its own bounded retries. So a host that is down
 * blocks only its own changes, and costs an `up` at most the probe's few seconds.
 *
 * It runs during `up` only: previews never contact hosts (prod's preview must stay offline).
 */
function checkedAddress(host: HostSpec, hostKey: pulumi.Input<string>): pulumi.Output<string> {
    if (pulumi.runtime.isDryRun()) return pulumi.output(host.address);
    return pulumi.output(hostKey).apply((pinned) => {
        // Not answering is a verdict for the gate to word, not a failed invoke: always exit 0.
        const probe = `ssh-keyscan -T ${PROBE_TIMEOUT_SECONDS} -p ${host.port} -t ${shellQuote(pinned.split(" ")[0])} ` +
            `${shellQuote(host.address)} 2>/dev/null; exit 0`;
        return command.local.runOutput({ command: probe, logging: "none" }).apply((result) => {
            const verdict = gateVerdict(host, pinned, result.stdout);
            if (verdict.refuse !== undefined) throw new pulumi.RunError(verdict.refuse);
            if (verdict.warn !== undefined) pulumi.log.warn(verdict.warn);
            return host.address;
        });
    });
}

/** What the gate makes of what ssh-keyscan printed ("" when the host did not answer) for the key `pinned`. */
export function gateVerdict(host: HostSpec, pinned: string, keyscanOutput: string): { refuse?: string; warn?: string } {
    const where = `host ${host.name} (${uriHost(host.address)}:${host.port})`;
    const line = keyscanOutput.trim();
    if (line === "") {
        return {
            warn: `${where} did not answer ssh within ${PROBE_TIMEOUT_SECONDS} s: its resources with changes will fail ` +
                "until it is back (check that it is up and reachable, then run `pulumi up` again); the rest go ahead",
        };
    }
    const presented = line.split(/\s+/).slice(-2).join(" ");
    if (presented !== pinned) {
        return {
            refuse: `${where} presented host key ${presented}, not the pinned ${pinned}: refusing to connect. ` +
                `If the server was rebuilt, pin its new key (read on the server: cut -d' ' -f1,2 /etc/ssh/ssh_host_${hostKeyFileType(pinned)}_key.pub); otherwise treat this as an attack`,
        };
    }
    return {};
}

/** The type part of sshd's host key file name (ssh_host_TYPE_key.pub) for a pinned key. */
function hostKeyFileType(hostKey: string): string {
    const algorithm = hostKey.split(" ")[0];
    if (algorithm.startsWith("ecdsa-")) return "ecdsa";
    return algorithm.replace(/^ssh-/, "");
}

/** The connection for every remote command on `host`, which must present `hostKey`. */
export function hostConnection(host: HostSpec, hostKey: pulumi.Input<string>, ssh: SshSettings, privateKey: SshKey): command.types.input.remote.ConnectionArgs {
    return {
        host: checkedAddress(host, hostKey),
        port: host.port,
        user: host.user,
        hostKey,
        privateKey,
        // The provider's own retries wait for a host that is booting: connectAttempts dials in
        // all, with a backoff of 100 ms growing 1.5x per attempt, each wait at most 5 s.
        dialErrorLimit: ssh.connectAttempts - 1,
        perDialTimeout: PER_DIAL_TIMEOUT_SECONDS,
    };
}
