// Locating the server and client programs the mesh runs, with a clear message when one is missing.
import { existsSync, readdirSync } from "node:fs";
import { hasProgram } from "../exec.js";

/** A program the mesh needs is not installed; the message names the Debian package. */
export class MissingProgramError extends Error {
  constructor(readonly program: string, readonly debianPackage: string) {
    super(`\`${program}\` is not installed (apt-get install -y ${debianPackage}; the list is scripts/apt-packages.txt)`);
  }
}

const SEARCH = ["/usr/sbin", "/usr/bin", "/sbin", "/bin"];

/** Absolute path (or PATH name) of `name`; PostgreSQL's server programs live in a versioned dir. */
export function findProgram(name: string, debianPackage: string): string {
  for (const dir of SEARCH) if (existsSync(`${dir}/${name}`)) return `${dir}/${name}`;
  if (existsSync("/usr/lib/postgresql")) {
    const versions = readdirSync("/usr/lib/postgresql").filter((v) => /^\d+$/.test(v)).sort((a, b) => Number(b) - Number(a));
    for (const v of versions) if (existsSync(`/usr/lib/postgresql/${v}/bin/${name}`)) return `/usr/lib/postgresql/${v}/bin/${name}`;
  }
  if (hasProgram(name)) return name;
  throw new MissingProgramError(name, debianPackage);
}

/** Which of the given programs are missing, as "program (package)" strings. */
export function missingPrograms(needs: readonly [string, string][]): string[] {
  const out: string[] = [];
  for (const [prog, pkg] of needs) {
    try { findProgram(prog, pkg); } catch { out.push(`${prog} (${pkg})`); }
  }
  return out;
}
