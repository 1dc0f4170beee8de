// A program whose `up` stays busy: a random password (the random provider), then a local command
// that runs for minutes (the command provider), so that the test can kill `pulumi` in the middle.
// `exec`: the command is the provider's own child, which is what a cancelled command kills (as
// upstream's exec.CommandContext; a grandchild a shell forks would outlive it there too).
import * as command from "@pulumi/command";
import * as random from "@pulumi/random";

const password = new random.RandomPassword("password", { length: 16 });
export const busy = new command.local.Command("busy", { create: "exec sleep 600", stdin: password.result }).stdout;
