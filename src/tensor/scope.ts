// Deterministic release of native memory. `tidy(fn)` frees every tensor made inside fn except
// those fn returns (which move to the enclosing scope); `keep(t)` exempts a tensor.

export interface Releasable {
  dispose(): void;
}

const scopes: Set<Releasable>[] = [];

/** Called by every new tensor: the innermost open scope will release it. */
export function track(value: Releasable): void {
  scopes[scopes.length - 1]?.add(value);
}

/** Takes a tensor (or anything tracked) out of every open scope: it lives until disposed or GC'd. */
export function keep<T extends Releasable>(value: T): T {
  for (const scope of scopes) scope.delete(value);
  return value;
}

function collect(value: unknown, scope: Set<Releasable>, found: Set<Releasable>, depth = 0): void {
  if (value === null || typeof value !== 'object' || depth > 8) return;
  if (scope.has(value as Releasable)) {
    found.add(value as Releasable);
    return;
  }
  if (Array.isArray(value)) {
    for (const item of value) collect(item, scope, found, depth + 1);
  } else if (value instanceof Map) {
    for (const item of value.values()) collect(item, scope, found, depth + 1);
  } else if (Object.getPrototypeOf(value) === Object.prototype) {
    for (const item of Object.values(value)) collect(item, scope, found, depth + 1);
  }
}

/**
 * Runs fn and disposes every tensor created during it, except the tensors in its result
 * (found in arrays, Maps and plain objects). fn must be synchronous.
 */
export function tidy<R>(fn: () => R): R {
  const scope = new Set<Releasable>();
  scopes.push(scope);
  let result: R;
  try {
    result = fn();
  } catch (error) {
    scopes.pop();
    for (const t of scope) t.dispose();
    throw error;
  }
  scopes.pop();
  if (result instanceof Promise) {
    for (const t of scope) t.dispose();
    throw new TypeError('tidy() takes a synchronous function; for async work, dispose tensors yourself or use `using`');
  }
  const kept = new Set<Releasable>();
  collect(result, scope, kept);
  const parent = scopes[scopes.length - 1];
  for (const t of scope) {
    if (kept.has(t)) parent?.add(t);
    else t.dispose();
  }
  return result;
}
