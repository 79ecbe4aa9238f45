/**
 * Bump allocator over an imported WebAssembly.Memory. Kernels take raw
 * pointers; this hands them out. Pointers are unsigned (`>>> 0`) because
 * offsets past 2 GiB come back negative from wasm i32 results.
 */

export const WASM_PAGE = 65536;
export const MAX_PAGES = 65536; // 4 GiB, the wasm32 limit

export class Arena {
  private topPtr: number;

  /** `base`: first usable byte (the kernels' `heapBase`). */
  constructor(
    readonly memory: WebAssembly.Memory,
    readonly base: number,
  ) {
    this.topPtr = base >>> 0;
    this.ensure(this.topPtr);
  }

  /** Next free byte. */
  get top(): number {
    return this.topPtr;
  }

  /** Bytes handed out since construction. */
  get used(): number {
    return this.topPtr - this.base;
  }

  /** Reserve `bytes` at an address aligned to `align` (a power of two). Grows memory as needed. */
  alloc(bytes: number, align = 16): number {
    if (!(bytes >= 0) || !Number.isFinite(bytes)) throw new RangeError(`Arena.alloc: bad size ${bytes}`);
    if (align <= 0 || (align & (align - 1)) !== 0) throw new RangeError(`Arena.alloc: bad alignment ${align}`);
    const p = Math.ceil(this.topPtr / align) * align;
    const end = p + bytes;
    if (end > 2 ** 32) throw new RangeError(`Arena: ${end} bytes exceed the 4 GiB wasm32 limit`);
    this.ensure(end);
    this.topPtr = end;
    return p >>> 0;
  }

  /** Current position, to release everything allocated after it with reset(). */
  mark(): number {
    return this.topPtr;
  }

  reset(mark: number): void {
    if (mark < this.base || mark > this.topPtr) throw new RangeError(`Arena.reset: bad mark ${mark}`);
    this.topPtr = mark;
  }

  /** Make sure [0, end) is inside the memory, growing it if needed. */
  ensure(end: number): void {
    const have = this.memory.buffer.byteLength;
    if (end <= have) return;
    const needPages = Math.ceil(end / WASM_PAGE);
    if (needPages > MAX_PAGES) throw new RangeError(`Arena: ${end} bytes exceed the 4 GiB wasm32 limit`);
    try {
      this.memory.grow(needPages - have / WASM_PAGE);
    } catch (e) {
      throw new RangeError(
        `Arena: cannot grow memory to ${needPages} pages (${(end / 2 ** 20).toFixed(1)} MiB): ${(e as Error).message}`,
      );
    }
  }

  // Views must be created after any growth (growing detaches old buffers).
  f32(ptr: number, length: number): Float32Array {
    return new Float32Array(this.memory.buffer, ptr >>> 0, length);
  }
  u8(ptr: number, length: number): Uint8Array {
    return new Uint8Array(this.memory.buffer, ptr >>> 0, length);
  }
  u16(ptr: number, length: number): Uint16Array {
    return new Uint16Array(this.memory.buffer, ptr >>> 0, length);
  }
  u32(ptr: number, length: number): Uint32Array {
    return new Uint32Array(this.memory.buffer, ptr >>> 0, length);
  }
}
