// Turning vetted values into shell text. Everything that reaches a remote shell goes through here.
import * as fs from "fs";
import * as path from "path";

/** Quotes one value as a single shell word. Config values are validated too; this is the second lock. */
export function shellQuote(value: string | number): string {
    return `'${String(value).replace(/'/g, `'\\''`)}'`;
}

/**
 * A script from components/setup/ as one command line: `VAR=value ... bash -c '<script>' NAME VERB`.
 * The remote login shell may be anything, so the script always runs under bash.
 */
export function setupScript(name: string, verb: string, vars: Record<string, string | number>): string {
    const body = fs.readFileSync(path.join(__dirname, "setup", `${name}.sh`), "utf8");
    const assignments = Object.entries(vars).map(([key, value]) => `${key}=${shellQuote(value)}`);
    return [...assignments, "bash", "-c", shellQuote(body), shellQuote(name), shellQuote(verb)].join(" ");
}
