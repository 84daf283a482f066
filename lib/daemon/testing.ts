// Test support for daemons: systemd's side of NOTIFY_SOCKET, a real unix
// datagram socket (no root needed), to check what a daemon told systemd.
import { closeSync } from 'node:fs';
import { constants } from 'node:os';
import { errnoOf } from '../errors.ts';
import { AF_UNIX, MSG_DONTWAIT, SOCK_CLOEXEC, SOCK_DGRAM, bind, recv, sockaddrUn, socket } from '../sys/index.ts';

/** A bound unix datagram socket playing systemd's side of NOTIFY_SOCKET. */
export class NotifyReceiver {
  readonly fd: number;
  constructor(readonly path: string) {
    this.fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    bind(this.fd, sockaddrUn(path), path);
  }
  /** Every datagram queued now (sendto to a unix socket queues synchronously). */
  drain(): string[] {
    const out: string[] = [];
    const buf = Buffer.alloc(4096);
    for (;;) {
      try {
        const n = recv(this.fd, buf, MSG_DONTWAIT);
        out.push(buf.subarray(0, n).toString());
      } catch (err) {
        if (errnoOf(err) === constants.errno.EAGAIN) return out;
        throw err;
      }
    }
  }
  close(): void {
    closeSync(this.fd);
  }
}

