// Commander parsers for numeric options: a clear usage error instead of NaN.
import { InvalidArgumentError } from 'commander';

export const integer = (name: string) => (value: string) => {
  const n = Number(value);
  if (!Number.isInteger(n)) throw new InvalidArgumentError(`${name} must be an integer.`);
  return n;
};

export const number = (name: string) => (value: string) => {
  const n = Number(value);
  if (!Number.isFinite(n)) throw new InvalidArgumentError(`${name} must be a number.`);
  return n;
};
