/**
 * A bounded queue of byte chunks between one producer and one consumer (async iteration), used to run pipeline
 * stages ahead of each other by a fixed amount of memory.
 * @module
 */

/**
 * A bounded single-consumer queue of chunks, iterated without ever concatenating them (a Readable's async
 * iterator copies whatever is buffered into one Buffer on each read: measurable on a 200 MB layer).
 */
export class Channel<T extends Uint8Array = Uint8Array> implements AsyncIterable<T> {
  readonly #queue: T[] = [];
  #bytes = 0;
  #ended = false;
  #closed = false; // the consumer stopped: further chunks are dropped
  #error: unknown;
  #wakeReader: (() => void) | undefined;
  #wakeWriter: (() => void) | undefined;
  readonly #limit: number;

  constructor(limit: number) {
    this.#limit = limit;
  }

  /** Whether the consumer stopped reading (the producer should stop too). */
  get closed(): boolean {
    return this.#closed;
  }

  /** Queues a chunk; resolves once the queue is below its limit again (or the consumer is gone). */
  async push(chunk: T): Promise<void> {
    if (this.#closed) return;
    this.#queue.push(chunk);
    this.#bytes += chunk.length;
    this.#wakeReader?.();
    while (this.#bytes > this.#limit && !this.#closed) await new Promise<void>((r) => (this.#wakeWriter = r));
  }

  end(): void {
    this.#ended = true;
    this.#wakeReader?.();
  }

  fail(error: unknown): void {
    this.#error ??= error;
    this.#ended = true;
    this.#wakeReader?.();
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<T> {
    try {
      for (;;) {
        const chunk = this.#queue.shift();
        if (chunk !== undefined) {
          this.#bytes -= chunk.length;
          if (this.#bytes <= this.#limit) this.#wakeWriter?.();
          yield chunk;
          continue;
        }
        if (this.#error !== undefined) throw this.#error;
        if (this.#ended) return;
        await new Promise<void>((r) => (this.#wakeReader = r));
        this.#wakeReader = undefined;
      }
    } finally {
      this.#closed = true;
      this.#wakeWriter?.();
    }
  }
}
