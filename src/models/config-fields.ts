// Reading diffusers config.json objects: typed fields with diffusers' defaults, and errors that
// name the model, the key and what was found.

export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

const show = (v: unknown) => (v === undefined ? 'nothing' : JSON.stringify(v));

export class ConfigReader {
  readonly #json: Readonly<Record<string, unknown>>;

  /** `what` names the model in messages ('UNet config'). */
  constructor(
    readonly what: string,
    json: unknown,
  ) {
    if (json === null || typeof json !== 'object' || Array.isArray(json)) throw new ConfigError(`${what}: expected a JSON object, got ${show(json)}`);
    this.#json = json as Record<string, unknown>;
  }

  fail(key: string, expected: string): never {
    throw new ConfigError(`${this.what}: '${key}' must be ${expected}, got ${show(this.#json[key])}`);
  }

  #get(key: string): unknown {
    const v = this.#json[key];
    return v === null ? undefined : v;
  }

  number(key: string, fallback?: number): number {
    const v = this.#get(key) ?? fallback;
    if (typeof v !== 'number' || !Number.isFinite(v)) this.fail(key, 'a number');
    return v;
  }

  /** A positive integer (or ≥ min). */
  int(key: string, fallback?: number, min = 1): number {
    const v = this.#get(key) ?? fallback;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min) this.fail(key, `an integer ≥ ${min}`);
    return v;
  }

  /** A positive integer, or null when absent. */
  optionalInt(key: string): number | null {
    return this.#get(key) === undefined ? null : this.int(key);
  }

  bool(key: string, fallback?: boolean): boolean {
    const v = this.#get(key) ?? fallback;
    if (typeof v !== 'boolean') this.fail(key, 'true or false');
    return v;
  }

  /** A string among `allowed`. */
  oneOf<S extends string>(key: string, allowed: readonly S[], fallback?: S): S {
    const v = this.#get(key) ?? fallback;
    if (typeof v !== 'string' || !allowed.includes(v as S)) this.fail(key, `one of ${allowed.join(', ')}`);
    return v as S;
  }

  /** A non-empty list of strings among `allowed`. */
  listOf<S extends string>(key: string, allowed: readonly S[], fallback?: readonly S[]): S[] {
    const v = this.#get(key) ?? fallback;
    if (!Array.isArray(v) || v.length === 0 || !v.every((s) => typeof s === 'string' && allowed.includes(s as S))) {
      this.fail(key, `a non-empty list of ${allowed.join(', ')}`);
    }
    return [...(v as S[])];
  }

  /** A non-empty list of positive integers. */
  intList(key: string, fallback?: readonly number[]): number[] {
    const v = this.#get(key) ?? fallback;
    if (!Array.isArray(v) || v.length === 0 || !v.every((n) => Number.isInteger(n) && n >= 1)) this.fail(key, 'a non-empty list of positive integers');
    return [...(v as number[])];
  }

  /** A positive integer for every block, or one list with a value per block (diffusers accepts both). */
  perBlock(key: string, blocks: number, fallback?: number): number[] {
    const v = this.#get(key) ?? fallback;
    if (Array.isArray(v)) {
      if (v.length !== blocks || !v.every((n) => Number.isInteger(n) && n >= 1)) this.fail(key, `a positive integer or a list of ${blocks} of them`);
      return [...(v as number[])];
    }
    return Array<number>(blocks).fill(this.int(key, fallback));
  }

  /** Throws when a feature this implementation lacks is switched on (any value but the default). */
  unsupported(key: string, defaultValue: unknown): void {
    const v = this.#get(key);
    if (v !== undefined && JSON.stringify(v) !== JSON.stringify(defaultValue)) {
      throw new ConfigError(`${this.what}: '${key}' = ${show(v)} is not supported (only ${show(defaultValue)})`);
    }
  }
}

/** Freezes a parsed config and the lists in it, so a shared constant cannot be changed by accident. */
export function frozen<T extends object>(config: T): Readonly<T> {
  for (const v of Object.values(config)) if (Array.isArray(v)) Object.freeze(v);
  return Object.freeze(config);
}
