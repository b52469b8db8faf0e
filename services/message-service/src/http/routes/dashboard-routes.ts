/**
 * The operator's web page at `/dashboard`: static files from the repository
 * (`services/message-service/dashboard/`), no framework and nothing fetched from outside
 * this RMS. The page asks for the admin token and keeps it in the tab's sessionStorage; it
 * calls the same `/v1` API as `rms-admin`, so the token travels only in `Authorization`
 * headers, never in a URL (and so never in a log line or a Referer).
 */
import { fileURLToPath } from 'node:url';
import express, { Router, type Response } from 'express';

/** Where the page's files are: `dashboard/` beside `src/` (and beside `dist/` once built). */
export const DASHBOARD_DIRECTORY = fileURLToPath(new URL('../../../dashboard/', import.meta.url));

/**
 * Only this RMS may supply scripts, styles and data to the page, and no other site may
 * frame it (click-jacking the resend buttons).
 */
const CONTENT_SECURITY_POLICY = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

function setPageHeaders(response: Response): void {
  response.set({
    'Content-Security-Policy': CONTENT_SECURITY_POLICY,
    'Referrer-Policy': 'no-referrer',
    'X-Content-Type-Options': 'nosniff',
    'Cache-Control': 'no-cache',
  });
}

/** `GET /dashboard` (the page) and `/dashboard/*` (its script and style). Mount before `authenticate`: the files hold no data. */
export function dashboardRoutes(directory = DASHBOARD_DIRECTORY): Router {
  const router = Router();
  const sendPage = (_request: express.Request, response: Response) => {
    setPageHeaders(response);
    response.sendFile('index.html', { root: directory });
  };
  router.get('/dashboard', sendPage);
  router.get('/dashboard/', sendPage);
  router.use(
    '/dashboard',
    express.static(directory, {
      index: false,
      redirect: false,
      dotfiles: 'deny',
      setHeaders: (response) => setPageHeaders(response as unknown as Response),
    }),
  );
  return router;
}
