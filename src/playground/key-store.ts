/**
 * The API key the playground sends, kept for this tab only (sessionStorage): closing the tab
 * forgets it, and no other site or tab can read it.
 */
const SLOT = "edgelm.apiKey";

export function storedKey(): string | undefined {
  try {
    return sessionStorage.getItem(SLOT) ?? undefined;
  } catch {
    // Storage can be blocked (privacy settings); the page then asks again after each 401.
    return undefined;
  }
}

export function storeKey(key: string): void {
  try {
    sessionStorage.setItem(SLOT, key);
  } catch {}
}
