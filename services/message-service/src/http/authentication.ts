/**
 * Bearer-token authentication against the app registry, and role checks per route.
 */
import type { NextFunction, Request, Response } from 'express';
import type { AppRegistration, AppRegistry, Role } from '../config/app-registry.js';
import { ForbiddenError, UnauthorizedError } from '../domain/errors.js';

/** The authenticated app of a request, set by `authenticate`. */
export function callerOf(response: Response): AppRegistration {
  const caller = response.locals['caller'] as AppRegistration | undefined;
  if (!caller) throw new UnauthorizedError('missing Authorization: Bearer <token>');
  return caller;
}

/** Middleware: resolves `Authorization: Bearer <token>` to a registered app, or answers 401. */
export function authenticate(registry: AppRegistry) {
  return (request: Request, response: Response, next: NextFunction): void => {
    const header = request.headers.authorization;
    if (!header) throw new UnauthorizedError('missing Authorization: Bearer <token>');
    const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
    if (!match?.[1]) throw new UnauthorizedError('Authorization must be "Bearer <token>"');
    const app = registry.findByToken(match[1]);
    if (!app) throw new UnauthorizedError('unknown token');
    response.locals['caller'] = app;
    next();
  };
}

/** Middleware: answers 403 unless the caller has one of `roles`. */
export function requireRole(...roles: Role[]) {
  return (_request: Request, response: Response, next: NextFunction): void => {
    const caller = callerOf(response);
    if (!roles.some((role) => caller.roles.includes(role))) {
      throw new ForbiddenError(`app ${caller.app} lacks the ${roles.join(' or ')} role`);
    }
    next();
  };
}
