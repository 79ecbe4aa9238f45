/** x-request-id: the client's, when it is a sane token (so logs on both sides join), else a fresh UUID. */
const SANE = /^[A-Za-z0-9._:-]{1,128}$/;

export function requestIdOf(req: Request): string {
  const given = req.headers.get("x-request-id");
  return given && SANE.test(given) ? given : crypto.randomUUID();
}
