// What every bench shares: its command-line options and the figures it reports.

/** The value after `--NAME` on the command line, or `fallback`. */
export function option(name: string, fallback: string): string {
    const at = process.argv.indexOf(`--${name}`);
    return at > 0 ? process.argv[at + 1] : fallback;
}

export const sorted = (values: number[]) => [...values].sort((a, b) => a - b);

/** The median; of an even count, the mean of the middle two. */
export function median(values: number[]): number {
    const s = sorted(values);
    const mid = Math.floor(s.length / 2);
    return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

/** A markdown table row: label, median, and the range of the values, each shown by `unit`. */
export function medianRow(label: string, values: number[], unit: (v: number) => string = (v) => `${Math.round(v)} ms`): string {
    const s = sorted(values);
    return `| ${label} | ${unit(median(values))} | ${unit(s[0])} - ${unit(s[s.length - 1])} |`;
}
