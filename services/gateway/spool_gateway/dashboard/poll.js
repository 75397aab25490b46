// Polling that never overlaps and rests while the tab is hidden.

/** Run `tick()` now and then `intervalMs` after each run ends, while the document is visible.
 * A tick that answers `false` ends the polling. Answers {stop, now}. */
export function poll(tick, intervalMs) {
  let timer = null;
  let running = false;
  let stopped = false;
  let again = false; // now() was asked while a tick ran: run once more right after it

  const visible = () => document.visibilityState !== "hidden";

  async function run() {
    clearTimeout(timer);
    timer = null;
    if (running) again = true;
    if (stopped || running || !visible()) return;
    running = true;
    try {
      if ((await tick()) === false) stopped = true;
    } catch {
      // Each tick shows its own errors in the page; a failed tick just waits for the next.
    } finally {
      running = false;
    }
    if (stopped || !visible()) return;
    timer = setTimeout(run, again ? 0 : intervalMs);
    again = false;
  }

  function onVisibility() {
    if (visible() && timer === null) run();
  }

  document.addEventListener("visibilitychange", onVisibility);
  run();
  return {
    stop() {
      stopped = true;
      clearTimeout(timer);
      document.removeEventListener("visibilitychange", onVisibility);
    },
    now: run,
  };
}
