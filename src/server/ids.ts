// Ids of jobs and uploads: the time in base 36 (so they sort by creation) and random letters.
import { randomBytes } from 'node:crypto';

export const ID_PATTERN = '^[a-z0-9]{8,40}$';
const ID = new RegExp(ID_PATTERN);

export function newId(): string {
  return Date.now().toString(36).padStart(9, '0') + randomBytes(5).toString('hex');
}

export const isId = (value: unknown): value is string => typeof value === 'string' && ID.test(value);
