// The undo stack of a CNI ADD (design rule 5: ADD keeps an undo stack and
// unwinds it on failure). Each step that changed the node pushes how to take
// the change back; when a later step fails, the plugin unwinds:
//
//   const undo = new Rollback('bridge');
//   try { ...; undo.push('veth', () => host.linkDel(i)); ... }
//   catch (err) { await undo.unwind(log); throw err; }
//
// Semantics, relied on by the plugins:
//   - steps run in reverse order of push, each awaited before the next;
//   - a failing step does not stop the unwind: its error is written as one
//     line `<plugin>: rollback of <what> failed: <message>` and the rest
//     still run; unwind itself never rejects, so the caller rethrows the
//     error that made ADD fail, not a rollback error;
//   - unwind empties the stack: a second unwind (or one after more pushes)
//     runs only what was pushed since.
import { errorMessage } from '../../lib/errors.ts';

export type UndoStep = () => Promise<void> | void;

export class Rollback {
  readonly #plugin: string;
  readonly #steps: { what: string; fn: UndoStep }[] = [];

  /** `plugin` names the plugin in the rollback error lines. */
  constructor(plugin: string) {
    this.#plugin = plugin;
  }

  /** Records how to undo the step just done; `what` names it in error lines. */
  push(what: string, fn: UndoStep): void {
    this.#steps.push({ what, fn });
  }

  /** How many steps are waiting (for tests and assertions). */
  get size(): number {
    return this.#steps.length;
  }

  /** Runs every recorded step, last first; failures go to `stderr`, one line each. */
  async unwind(stderr: (s: string) => void): Promise<void> {
    for (let s = this.#steps.pop(); s !== undefined; s = this.#steps.pop()) {
      try {
        await s.fn();
      } catch (err) {
        stderr(`${this.#plugin}: rollback of ${s.what} failed: ${errorMessage(err)}\n`);
      }
    }
  }
}
