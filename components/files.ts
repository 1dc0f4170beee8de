// Reading files the program may or may not find (stack files, key files, passphrase files).
import * as fs from "fs";

/** The text of `file`, or undefined when it cannot be read. */
export function readFileIfExists(file: string): string | undefined {
    try {
        return fs.readFileSync(file, "utf8");
    } catch {
        return undefined;
    }
}
