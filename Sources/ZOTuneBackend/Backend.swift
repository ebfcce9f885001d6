import Dispatch

/// Where tensors live and kernels run.
public enum DeviceKind: String, Sendable, CustomStringConvertible {
    case cpu, cuda
    public var description: String { rawValue }
}

public struct BackendError: Error, CustomStringConvertible, Sendable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// The interface every device implements: allocation through the memory ledger, host copies, and
/// the kernel set of zt_cpu.h / zt_cuda_api.h. Arguments are tensors on this backend; shapes are
/// checked here in Swift, the kernels trust them. No device-specific type crosses this boundary.
public protocol Backend: AnyObject, Sendable {
    var device: DeviceKind { get }
    /// One line naming the device ("CPU: 2 threads, OpenBLAS ...").
    var summary: String { get }
    var ledger: MemoryLedger { get }

    // Memory. `allocateRaw` returns zero-filled bytes; callers go through `allocate`.
    func allocateRaw(bytes: Int) throws -> UnsafeMutableRawPointer
    func release(_ pointer: UnsafeMutableRawPointer, bytes: Int)
    func copy(_ tensor: Tensor, fromHost source: UnsafeRawBufferPointer)
    func copy(_ tensor: Tensor, toHost destination: UnsafeMutableRawBufferPointer)
    func copy(_ destination: Tensor, from source: Tensor)
    func synchronize()

    // Perturbation stream (ALGORITHMS.md §2–§3). z is indexed by the tensor's own offset.
    func perturb(_ x: Tensor, seed: UInt64, tensorId: UInt32, stream: UInt32, scale: Float)
    /// One pass: θ = x + restore·z, then θ −= step·z + decay·θ (restore = ε, step = ηg, decay = ηλ).
    func restoreUpdate(_ x: Tensor, seed: UInt64, tensorId: UInt32, stream: UInt32, restore: Float, step: Float, decay: Float)
    /// A training step's perturb(a1), perturb(a2), restoreUpdate(...) in one pass with the same roundings.
    func replayStep(_ x: Tensor, seed: UInt64, tensorId: UInt32, stream: UInt32, a1: Float, a2: Float, restore: Float, step: Float, decay: Float)
    func perturbedCopy(into out: Tensor, from source: Tensor, seed: UInt64, tensorId: UInt32, stream: UInt32, scale: Float)
    func fillNormal(_ out: Tensor, seed: UInt64, tensorId: UInt32, stream: UInt32, scale: Float)
    func convert(into destination: Tensor, from source: Tensor)
    /// One fused pass of a stateful ZO optimizer (zt_optim.h): redo the replayed probes, undo the
    /// last one, advance the f32 state (`state2`: Adam's v only) and write x. The state tensors
    /// hold x's elements in order.
    func zoUpdate(_ kind: ZOUpdateKind, _ x: Tensor, state1: Tensor, state2: Tensor?, seed: UInt64, tensorId: UInt32,
                  stream: UInt32, scalars: ZOUpdateScalars)
    /// HiZOO's probe: x += scale·z/√h (h: f32, x's elements in order).
    func perturbHessian(_ x: Tensor, h: Tensor, seed: UInt64, tensorId: UInt32, stream: UInt32, scale: Float)

    // Elementwise (f32; out may be an input).
    func add(_ out: Tensor, _ a: Tensor, _ b: Tensor)
    func mul(_ out: Tensor, _ a: Tensor, _ b: Tensor)
    func scale(_ out: Tensor, _ a: Tensor, by s: Float)
    func addRows(_ x: Tensor, bias: Tensor)
    func activation(_ kind: Activation, _ out: Tensor, _ x: Tensor)
    func swiglu(_ out: Tensor, gate: Tensor, up: Tensor)

    // Rows of the last dimension.
    func softmax(_ out: Tensor, _ x: Tensor)
    func logSoftmax(_ out: Tensor, _ x: Tensor)
    /// out (rows) = log-softmax(x (rows, dim))[row, targets[row]] (i32 targets; negative → 0).
    func tokenLogProbs(_ out: Tensor, _ x: Tensor, targets: Tensor)
    func layerNorm(_ out: Tensor, _ x: Tensor, gamma: Tensor?, beta: Tensor?, eps: Float)
    func rmsNorm(_ out: Tensor, _ x: Tensor, gamma: Tensor?, eps: Float)

    // Transformer pieces.
    /// out (n, dim) = rows of `table` (vocab, dim) at i32 `ids` (n); throws on an out-of-range id.
    func embedding(_ out: Tensor, table: Tensor, ids: Tensor) throws
    /// Rotary embedding of x (tokens, heads, headDim) in place at i32 `positions` (tokens);
    /// `invFreq` (rotaryDim/2) carries theta and any rope scaling.
    func rope(_ x: Tensor, positions: Tensor, headDim: Int, rotaryDim: Int, invFreq: Tensor)
    /// Causal attention, q/out (B, T, Hq, D), k/v (B, S_cap, Hkv, D) of which the first
    /// `keyLength` (default S_cap) positions are used, u8 keyMask (B, S_cap); see zt_attention.
    func attention(_ out: Tensor, q: Tensor, k: Tensor, v: Tensor, keyLength: Int?, keyMask: Tensor?, scale: Float)
    /// dst[r·ldd + c] = src[r·lds + c] for r < rows, c < cols (f32; offsets are the tensors' own).
    func copy2D(_ dst: Tensor, ldd: Int, from src: Tensor, lds: Int, rows: Int, cols: Int)

    /// C = alpha·op(A)·op(B) + beta·C on the last two dimensions; leading dimensions of A, B, C
    /// (if any) are a batch (A or B may be 2-D and broadcast).
    func matmul(_ c: Tensor, _ a: Tensor, transposeA: Bool, _ b: Tensor, transposeB: Bool, alpha: Float, beta: Float)
    /// Newton–Schulz quintic orthogonalization of an f32 matrix in place (ZO-Muon).
    func newtonSchulz(_ x: Tensor, steps: Int) throws
}

/// The optimizers with a fused stateful update kernel.
public enum ZOUpdateKind: Int32, Sendable {
    case momentum = 1, adam = 2, hizoo = 3
}

/// The scalars of one fused update (zt_zo_update_args; the meaning of each field depends on the kind).
public struct ZOUpdateScalars: Sendable, Equatable {
    /// Replay only: the step's probe perturbations, redone before the restore (0 in training).
    public var a1: Float = 0, a2: Float = 0
    /// Undoes the last probe (ε for the two-sided estimate).
    public var restore: Float = 0
    /// Projected gradient.
    public var g: Float = 0
    /// η_t (Adam: η_t / (1 − β₁ᵗ)).
    public var lr: Float = 0
    /// η_t·λ, decoupled weight decay (0 for tensors that are not decayed).
    public var decay: Float = 0
    public var beta1: Float = 0, beta2: Float = 0, adamEps: Float = 0, bc2Sqrt: Float = 1
    /// HiZOO: α·|ℓ₊ + ℓ₋ − 2ℓ₀|/(2ε²) and 1 − α.
    public var curvature: Float = 0, keep: Float = 1

    public init() {}
}

public enum Activation: String, Sendable, CaseIterable {
    case relu, silu, geluTanh = "gelu_tanh", geluErf = "gelu_erf"
}

extension Backend {
    /// A zero-filled tensor on this backend, accounted under `tag`.
    public func allocate(_ shape: [Int], dtype: DType = .f32, tag: MemoryTag) throws -> Tensor {
        let count = shape.reduce(1, *)
        let bytes = max(count * dtype.size, 1)
        let pointer = try allocateRaw(bytes: bytes)
        ledger.allocated(bytes, tag: tag)
        let buffer = DeviceBuffer(pointer: pointer, bytes: bytes, tag: tag, backend: self)
        return Tensor(buffer: buffer, dtype: dtype, shape: shape)
    }

    /// An f32 tensor holding `values`.
    public func tensor(_ values: [Float], shape: [Int], tag: MemoryTag) throws -> Tensor {
        precondition(values.count == shape.reduce(1, *), "\(values.count) values for shape \(shape)")
        let t = try allocate(shape, dtype: .f32, tag: tag)
        values.withUnsafeBytes { copy(t, fromHost: $0) }
        return t
    }

    /// An i32 or u8 tensor holding `values`.
    public func tensor<T: FixedWidthInteger>(_ values: [T], shape: [Int], tag: MemoryTag) throws -> Tensor {
        precondition(values.count == shape.reduce(1, *), "\(values.count) values for shape \(shape)")
        let dtype: DType = T.bitWidth == 32 ? .i32 : .u8
        precondition(T.bitWidth == dtype.size * 8, "integer tensors are i32 or u8")
        let t = try allocate(shape, dtype: dtype, tag: tag)
        values.withUnsafeBytes { copy(t, fromHost: $0) }
        return t
    }

    /// The tensor's elements as f32 on the host (converting f16/bf16).
    public func toHost(_ t: Tensor) -> [Float] {
        precondition(t.dtype.isFloat, "toHost reads floating tensors, got \(t)")
        if t.dtype == .f32 {
            var out = [Float](repeating: 0, count: t.count)
            out.withUnsafeMutableBytes { copy(t, toHost: $0) }
            return out
        }
        var raw = [UInt16](repeating: 0, count: t.count)
        raw.withUnsafeMutableBytes { copy(t, toHost: $0) }
        return raw.map { t.dtype == .bf16 ? bf16ToFloat($0) : f16ToFloat($0) }
    }
}

@inline(__always) func bf16ToFloat(_ h: UInt16) -> Float { Float(bitPattern: UInt32(h) << 16) }
@inline(__always) func f16ToFloat(_ h: UInt16) -> Float { Float(Float16(bitPattern: h)) }

extension Backend {
    /// Median wall seconds of `repeats` runs of `body` after one warm-up run, each waited for on
    /// the device (kernels may be asynchronous): the one timer of every benchmark.
    public func medianSeconds(_ repeats: Int, _ body: () throws -> Void) rethrows -> Double {
        try body()
        synchronize()
        var times: [Double] = []
        for _ in 0..<max(1, repeats) {
            let start = DispatchTime.now().uptimeNanoseconds
            try body()
            synchronize()
            times.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
        }
        return times.sorted()[times.count / 2]
    }
}
