// Errors of the API: every one is `{ error: { message, field? } }` with a fitting status code.
import type { FastifyError, FastifyInstance } from 'fastify';

export class ApiError extends Error {
  constructor(
    readonly statusCode: number,
    message: string,
    /** The input the error is about, as a path ('subjects/0/word'). */
    readonly field?: string,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

export const badInput = (message: string, field?: string) => new ApiError(400, message, field);

export function errorBody(message: string, field?: string): { error: { message: string; field?: string } } {
  return { error: field ? { message, field } : { message } };
}

interface AjvError {
  instancePath: string;
  keyword: string;
  params: Record<string, unknown>;
  message?: string;
}

/** A request-schema error as one clear sentence and the field it is about. */
export function describeValidation(errors: readonly AjvError[], context: string): { message: string; field?: string } {
  const e = errors[0]!;
  const path = e.instancePath.replace(/^\//, '');
  const where = path ? `'${path}'` : context === 'body' ? 'the request body' : `the ${context}`;
  const join = (field: unknown) => (path ? `${path}/${String(field)}` : String(field));
  switch (e.keyword) {
    case 'additionalProperties': {
      const name = String(e.params.additionalProperty);
      return { message: `unknown field '${join(name)}'${context === 'body' ? '' : ` in the ${context}`}: see docs/api.md for the fields`, field: join(name) };
    }
    case 'required': {
      const name = String(e.params.missingProperty);
      return { message: `missing field '${join(name)}'`, field: join(name) };
    }
    case 'enum':
      return { message: `${where} must be one of: ${(e.params.allowedValues as unknown[]).join(', ')}`, field: path || undefined };
    case 'anyOf':
      return { message: `${where} must be an upload id or a list of upload ids`, field: path || undefined };
    case 'type':
      return { message: `${where} must be ${e.params.type === 'integer' ? 'an integer' : `of type ${String(e.params.type)}`}`, field: path || undefined };
    default:
      return { message: `${where} ${e.message ?? 'is invalid'}`, field: path || undefined };
  }
}

/** Installs the error and not-found handlers that give every error the API's shape. */
export function installErrorHandlers(app: FastifyInstance): void {
  app.setErrorHandler((error: FastifyError & { validation?: AjvError[]; validationContext?: string }, request, reply) => {
    if (error.validation?.length) {
      const { message, field } = describeValidation(error.validation, error.validationContext ?? 'body');
      return reply.code(400).send(errorBody(message, field));
    }
    if (error instanceof ApiError) {
      if (error.statusCode === 429) reply.header('Retry-After', '5');
      if (error.statusCode === 401) reply.header('WWW-Authenticate', 'Bearer');
      return reply.code(error.statusCode).send(errorBody(error.message, error.field));
    }
    const status = typeof error.statusCode === 'number' ? error.statusCode : 500;
    if (status >= 500) {
      request.log.error(error);
      return reply.code(500).send(errorBody(`internal error: ${error.message}`));
    }
    return reply.code(status).send(errorBody(plainMessage(error)));
  });
  app.setNotFoundHandler((request, reply) => reply.code(404).send(errorBody(`not found: ${request.method} ${request.url.split('?')[0]}`)));
}

/** Fastify's own client errors, reworded where they would puzzle a user. */
function plainMessage(error: FastifyError): string {
  switch (error.code) {
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return `the request body is not valid JSON: ${error.message}`;
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return `unsupported content type: send JSON with 'Content-Type: application/json' (${error.message})`;
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return 'the request body is too large';
    default:
      return error.message;
  }
}
