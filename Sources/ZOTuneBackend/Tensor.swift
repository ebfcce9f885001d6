/// A device allocation: raw bytes owned by one backend and accounted in its ledger under one tag.
/// Freed (and un-accounted) when the last tensor viewing it goes away.
public final class DeviceBuffer: @unchecked Sendable {
    public let pointer: UnsafeMutableRawPointer   // host or device address; opaque to Swift
    public let bytes: Int
    public let tag: MemoryTag
    public let backend: any Backend

    init(pointer: UnsafeMutableRawPointer, bytes: Int, tag: MemoryTag, backend: any Backend) {
        self.pointer = pointer
        self.bytes = bytes
        self.tag = tag
        self.backend = backend
    }

    deinit {
        backend.release(pointer, bytes: bytes)
        backend.ledger.freed(bytes, tag: tag)
    }
}

/// A dense row-major view into a device buffer: dtype, shape and an element offset.
public struct Tensor: @unchecked Sendable, CustomStringConvertible {
    public let buffer: DeviceBuffer
    public let dtype: DType
    public let shape: [Int]
    /// Offset of element 0 in elements of `dtype` from the start of the buffer.
    public let offset: Int
    /// The buffer offset of the named tensor's element 0, which this view is part of: several
    /// weights may share one buffer (q/k/v rows side by side, one GEMM), yet each keeps its own z
    /// stream, indexed from its own first element (`streamIndex`).
    public let streamOrigin: Int

    public init(buffer: DeviceBuffer, dtype: DType, shape: [Int], offset: Int = 0, streamOrigin: Int = 0) {
        precondition(shape.allSatisfy { $0 >= 0 }, "negative dimension in \(shape)")
        precondition(dtype.byteCount(offset + shape.reduce(1, *)) <= buffer.bytes,
                     "view \(shape) at \(offset) exceeds its \(buffer.bytes)-byte buffer")
        precondition(streamOrigin <= offset, "stream origin \(streamOrigin) after the view's offset \(offset)")
        self.buffer = buffer
        self.dtype = dtype
        self.shape = shape
        self.offset = offset
        self.streamOrigin = streamOrigin
    }

    /// The global index of element 0 in its tensor's z stream (a slice of a weight continues it).
    public var streamIndex: Int { offset - streamOrigin }

    /// Identifies the storage of a view: two names with the same key are one tensor (a tied head).
    public var storageKey: StorageKey { StorageKey(buffer: ObjectIdentifier(buffer), offset: offset) }
    public struct StorageKey: Hashable { let buffer: ObjectIdentifier; let offset: Int }

    public var count: Int { shape.reduce(1, *) }
    public var rank: Int { shape.count }
    public var backend: any Backend { buffer.backend }
    public var bytes: Int { dtype.byteCount(count) }

    /// Address of element 0 (device address for device backends).
    public var pointer: UnsafeMutableRawPointer { buffer.pointer + dtype.byteCount(offset) }
    public var f32: UnsafeMutablePointer<Float> {
        precondition(dtype == .f32, "expected an f32 tensor, got \(dtype)")
        return pointer.assumingMemoryBound(to: Float.self)
    }

    public var i32: UnsafeMutablePointer<Int32> {
        precondition(dtype == .i32, "expected an i32 tensor, got \(dtype)")
        return pointer.assumingMemoryBound(to: Int32.self)
    }

    /// The same elements under another shape.
    public func reshaped(_ newShape: [Int]) -> Tensor {
        var shape = newShape
        if let infer = shape.firstIndex(of: -1) {
            let known = shape.enumerated().filter { $0.offset != infer }.map(\.element).reduce(1, *)
            shape[infer] = known == 0 ? 0 : count / known
        }
        precondition(shape.reduce(1, *) == count, "cannot reshape \(self.shape) to \(newShape)")
        return Tensor(buffer: buffer, dtype: dtype, shape: shape, offset: offset, streamOrigin: streamOrigin)
    }

    /// Rows [start, start + length) of the leading dimension.
    public func rows(_ start: Int, _ length: Int) -> Tensor {
        precondition(rank >= 1 && start >= 0 && start + length <= shape[0], "rows \(start)..<\(start + length) of \(shape)")
        let rowCount = shape.dropFirst().reduce(1, *)
        return Tensor(buffer: buffer, dtype: dtype, shape: [length] + shape.dropFirst(), offset: offset + start * rowCount, streamOrigin: streamOrigin)
    }

    /// A flat view of `length` elements starting at element `start`.
    public func flatSlice(_ start: Int, _ length: Int) -> Tensor {
        precondition(start >= 0 && start + length <= count, "slice \(start)..<\(start + length) of \(count) elements")
        return Tensor(buffer: buffer, dtype: dtype, shape: [length], offset: offset + start, streamOrigin: streamOrigin)
    }

    public var description: String { "Tensor(\(dtype), \(shape), \(backend.device))" }
}
