// Field readers for the training configs: each checks one field and fills in its default. A
// failure names the field ('stages.vae.lr') through the error its config makes (a ConfigFieldError
// subclass with the config's own name and message prefix).
import { readFileSync } from 'node:fs';
import { extname } from 'node:path';
import { parse as parseYaml } from 'yaml';

export type Raw = Record<string, unknown>;

export const isObject = (v: unknown): v is Raw => typeof v === 'object' && v !== null && !Array.isArray(v);

export interface NumCheck {
  int?: boolean;
  min?: number;
  max?: number;
  positive?: boolean;
  below?: number;
}

/** A config field that is wrong: the message names the config kind and the field. */
export class ConfigFieldError extends Error {
  constructor(
    kind: string,
    readonly field: string,
    problem: string,
  ) {
    super(`${kind}: '${field}' ${problem}`);
    this.name = new.target.name;
  }
}

/** `at.key`, or `key` at the top level. */
const fieldName = (at: string, key: string) => (at ? `${at}.${key}` : key);

/** The readers, each failing through `fail` (which makes the config's own error). */
export function fieldReader(fail: (field: string, problem: string) => Error) {
  return {
    /** Refuses keys outside `known` (typos), naming the known ones. */
    onlyKeys(raw: Raw, known: readonly string[], at: string): void {
      for (const k of Object.keys(raw)) {
        if (!known.includes(k)) throw fail(fieldName(at, k), `is not a known field (known: ${[...known].sort().join(', ')})`);
      }
    },

    /** An object field; missing or null is `{}` unless required. */
    object(raw: Raw, key: string, at: string, required: boolean): Raw {
      const v = raw[key];
      if (v === undefined || v === null) {
        if (required) throw fail(fieldName(at, key), 'is required');
        return {};
      }
      if (!isObject(v)) throw fail(fieldName(at, key), `must be an object, not ${JSON.stringify(v)}`);
      return v;
    },

    /** A non-empty string; `fallback` undefined makes it required, null lets it be null. */
    str(raw: Raw, key: string, at: string, fallback?: string | null): string | null {
      const v = raw[key];
      if (v === undefined || (v === null && fallback === null)) {
        if (fallback === undefined) throw fail(fieldName(at, key), 'is required');
        return fallback;
      }
      if (typeof v !== 'string' || v === '') throw fail(fieldName(at, key), `must be a non-empty string, not ${JSON.stringify(v)}`);
      return v;
    },

    /** A finite number within the checks; `fallback` undefined makes it required. */
    num(raw: Raw, key: string, at: string, fallback: number | undefined, check: NumCheck): number {
      const v = raw[key];
      const field = fieldName(at, key);
      if (v === undefined) {
        if (fallback === undefined) throw fail(field, 'is required');
        return fallback;
      }
      const what = check.int ? 'an integer' : 'a number';
      if (typeof v !== 'number' || !Number.isFinite(v) || (check.int && !Number.isSafeInteger(v))) throw fail(field, `must be ${what}, not ${JSON.stringify(v)}`);
      if (check.positive && !(v > 0)) throw fail(field, `must be > 0, not ${v}`);
      if (check.min !== undefined && v < check.min) throw fail(field, `must be ≥ ${check.min}, not ${v}`);
      if (check.max !== undefined && v > check.max) throw fail(field, `must be ≤ ${check.max}, not ${v}`);
      if (check.below !== undefined && v >= check.below) throw fail(field, `must be < ${check.below}, not ${v}`);
      return v;
    },

    /** One of `values`, or `fallback` when missing. */
    oneOf<T extends string>(raw: Raw, key: string, at: string, values: readonly T[], fallback: T): T {
      const v = raw[key];
      if (v === undefined) return fallback;
      if (!values.includes(v as T)) throw fail(fieldName(at, key), `must be one of ${values.map((x) => `'${x}'`).join(', ')}, not ${JSON.stringify(v)}`);
      return v as T;
    },
  };
}

/** Parses a .json, .yaml or .yml config file; `what` names it in errors ('training config'). */
export function readConfigFile(path: string, what: string): unknown {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new Error(`${what} '${path}' cannot be read: ${error instanceof Error ? error.message : String(error)}`, { cause: error });
  }
  const ext = extname(path).toLowerCase();
  try {
    return ext === '.json' ? JSON.parse(text) : parseYaml(text);
  } catch (error) {
    throw new Error(`${what} '${path}' is not valid ${ext === '.json' ? 'JSON' : 'YAML'}: ${error instanceof Error ? error.message : String(error)}`, { cause: error });
  }
}
