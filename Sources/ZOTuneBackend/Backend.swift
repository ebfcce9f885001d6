import Dispatch
import ZOTuneKernels

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

    // Memory. `allocateRaw` returns zero-filled bytes when `zeroed`, else whatever the allocator
    // hands out (a buffer the caller writes in full); callers go through `allocate`.
    func allocateRaw(bytes: Int, zeroed: Bool) throws -> UnsafeMutableRawPointer
    func release(_ pointer: UnsafeMutableRawPointer, bytes: Int)
    func copy(_ tensor: Tensor, fromHost source: UnsafeRawBufferPointer)
    func copy(_ tensor: Tensor, toHost destination: UnsafeMutableRawBufferPointer)
    func copy(_ destination: Tensor, from source: Tensor)
    func synchronize()
    /// Waits for the device and throws its first failure since it was made (a kernel whose launch
    /// failed, named, or a fault), which the non-throwing methods only record: a host copy that
    /// fails returns NaN bytes. Whatever acts on a device result (a loss, a saved weight) checks
    /// first, or reads through `read`.
    func checkErrors() throws

    // Perturbation stream (ALGORITHMS.md §2–§3). z is indexed by the tensor's own offset.
    func perturb(_ x: Tensor, seed: UInt64, tensorId: UInt32, stream: UInt32, scale: Float)
    /// One pass: θ = x + restore·z, then θ −= step·z + decay·θ (restore = ε, step = ηg, decay = ηλ).
    func restoreUpdate(_ x: Tensor, seed: UInt64, tensorId: UInt32, stream: UInt32, restore: Float, step: Float, decay: Float)
    /// A training step's perturb(a1), perturb(a2), restoreUpdate(...) in one pass with the same roundings.
    func replayStep(_ x: Tensor, seed: UInt64, tensorId: UInt32, stream: UInt32, a1: Float, a2: Float, restore: Float, step: Float, decay: Float)
    /// perturb / restoreUpdate (with each item's decay) of many tensors: element for element the
    /// single-tensor calls, but a device runs the small ones (norms, biases) many per launch.
    func perturb(_ items: [StreamItem], seed: UInt64, stream: UInt32, scale: Float)
    func restoreUpdate(_ items: [StreamItem], seed: UInt64, stream: UInt32, restore: Float, step: Float)
    func perturbedCopy(into out: Tensor, from source: Tensor, seed: UInt64, tensorId: UInt32, stream: UInt32, scale: Float)
    func fillNormal(_ out: Tensor, seed: UInt64, tensorId: UInt32, stream: UInt32, scale: Float)
    /// out = scale·z of another tensor: z indexed from element `first` (that tensor's streamIndex),
    /// so out holds exactly the z its perturbation uses.
    func fillNormal(_ out: Tensor, first: Int, seed: UInt64, tensorId: UInt32, stream: UInt32, scale: Float)
    func convert(into destination: Tensor, from source: Tensor)
    /// One fused pass of a stateful ZO optimizer (zt_optim.h): redo the replayed probes, undo the
    /// last one, advance the f32 state (`state2`: Adam's v only) and write x. The state tensors
    /// hold x's elements in order.
    func zoUpdate(_ kind: ZOUpdateKind, _ x: Tensor, state1: Tensor, state2: Tensor?, seed: UInt64, tensorId: UInt32,
                  stream: UInt32, scalars: ZOUpdateScalars)
    /// HiZOO's probe: x += scale·z/√h (h: f32, x's elements in order).
    func perturbHessian(_ x: Tensor, h: Tensor, seed: UInt64, tensorId: UInt32, stream: UInt32, scale: Float)
    /// zoUpdate of many tensors with their states (scalars' decay replaced by each item's): the
    /// single-tensor results, the small tensors many per launch on a device.
    func zoUpdate(_ kind: ZOUpdateKind, _ items: [ZOStreamItem], seed: UInt64, stream: UInt32, scalars: ZOUpdateScalars)

    // Elementwise (f32; out may be an input).
    func add(_ out: Tensor, _ a: Tensor, _ b: Tensor)
    func mul(_ out: Tensor, _ a: Tensor, _ b: Tensor)
    func scale(_ out: Tensor, _ a: Tensor, by s: Float)
    func addRows(_ x: Tensor, bias: Tensor)
    func activation(_ kind: Activation, _ out: Tensor, _ x: Tensor)
    func swiglu(_ out: Tensor, gate: Tensor, up: Tensor)
    /// x = cap·tanh(x / cap) in place (f32; Gemma 2's final-logit soft-capping); cap > 0 and finite.
    func softcap(_ x: Tensor, cap: Float)

    // Rows of the last dimension.
    func softmax(_ out: Tensor, _ x: Tensor)
    func logSoftmax(_ out: Tensor, _ x: Tensor)
    /// out (rows) = log-softmax(x (rows, dim))[row, targets[row]] (i32 targets; negative → 0).
    func tokenLogProbs(_ out: Tensor, _ x: Tensor, targets: Tensor)
    /// One column panel of token log-probs streamed over a head too large to hold in f32:
    /// `state` (rows, 3) = running max, running Σexp and the target's logit (start: −inf, 0, 0);
    /// `x` (rows, cols) holds columns [col0, col0 + cols) of the logits, rows `ldx` apart.
    func logSumExpPanel(_ state: Tensor, _ x: Tensor, ldx: Int, cols: Int, col0: Int, targets: Tensor)
    func layerNorm(_ out: Tensor, _ x: Tensor, gamma: Tensor?, beta: Tensor?, eps: Float)
    func rmsNorm(_ out: Tensor, _ x: Tensor, gamma: Tensor?, eps: Float)
    /// rmsNorm that also writes its output rounded to `half`'s dtype (bf16 or f16), in the same
    /// kernel: the bits of rmsNorm then convert, without the second pass; `out` nil writes the
    /// rounded copy only (what the next matmulHalf calls read). docs/cuda.md, "Precision".
    func rmsNormHalf(_ out: Tensor?, half: Tensor, _ x: Tensor, gamma: Tensor?, eps: Float)
    /// swiglu with its output rounded the same way into `half` (out nil: only there).
    func swigluHalf(_ out: Tensor?, half: Tensor, gate: Tensor, up: Tensor)
    /// layerNorm with its output rounded the same way into `half` (out nil: only there).
    func layerNormHalf(_ out: Tensor?, half: Tensor, _ x: Tensor, gamma: Tensor?, beta: Tensor?, eps: Float)
    /// out = act(x), or act(x) ⊙ `times` (a gated MLP's GeGLU: the bits of activation then mul),
    /// rounded the same way into `half` (out nil: only there); out may be x or `times`.
    func activationHalf(_ kind: Activation, _ out: Tensor?, half: Tensor, _ x: Tensor, times: Tensor?)
    /// attention with its output rounded the same way into `half` (o_proj's 16-bit input).
    func attentionHalf(_ out: Tensor, half: Tensor, q: Tensor, k: Tensor, v: Tensor, keyLength: Int?, keyMask: Tensor?,
                       scale: Float, window: Int, softcap: Float)
    /// CUDA graphs (docs/cuda.md, "Graph capture"): records the launches `body` makes as one graph
    /// instead of running them, or returns nil where graphs are off (ZOTUNE_CUDA_GRAPHS=0, or
    /// disabled after an error: GraphSwitch) or unsupported (the CPU), and the caller runs `body`'s
    /// work eagerly. `body` must not read results on the host, and the tensors it reads and writes
    /// outside its own allocations must outlive the graph; record after one eager run of the same
    /// work. (Escaping only for the CPU's test emulation, which replays by calling it again.)
    func recordGraph(_ body: @escaping () throws -> Void) throws -> DeviceGraph?
    /// Replays a recorded graph on its addresses (upload new inputs into its input tensors first).
    func launch(_ graph: DeviceGraph) throws

    // Transformer pieces.
    /// out (n, dim) = rows of `table` (vocab, dim) at i32 `ids` (n); throws on an out-of-range id.
    /// `checkedOnHost`: the caller has range-checked the ids, so a device need not count them (no
    /// wait for its stream); an out-of-range id then gives a zero row.
    func embedding(_ out: Tensor, table: Tensor, ids: Tensor, checkedOnHost: Bool) throws
    /// Rotary embedding of x (tokens, heads, headDim) in place at i32 `positions` (tokens);
    /// `invFreq` (rotaryDim/2) carries theta and any rope scaling, `scale` the attention factor
    /// (LongRoPE, YaRN) that multiplies cos and sin (1: none, exactly the unscaled rotation).
    func rope(_ x: Tensor, positions: Tensor, headDim: Int, rotaryDim: Int, invFreq: Tensor, scale: Float)
    /// Causal attention, q/out (B, T, Hq, D), k/v (B, S_cap, Hkv, D) of which the first
    /// `keyLength` (default S_cap) positions are used, u8 keyMask (B, S_cap); see zt_attention.
    /// `window` > 0: sliding window, query at key index i sees keys i − window < j ≤ i (0: all).
    /// `softcap` > 0 (Gemma 2): each score s = scale·q·k becomes softcap·tanh(s / softcap) before the
    /// mask and softmax; 0: none, bit for bit the kernel without it.
    func attention(_ out: Tensor, q: Tensor, k: Tensor, v: Tensor, keyLength: Int?, keyMask: Tensor?, scale: Float,
                   window: Int, softcap: Float)
    /// dst[r·ldd + c] = src[r·lds + c] for r < rows, c < cols (f32; offsets are the tensors' own).
    func copy2D(_ dst: Tensor, ldd: Int, from src: Tensor, lds: Int, rows: Int, cols: Int)

    /// C = alpha·op(A)·op(B) + beta·C on the last two dimensions; leading dimensions of A, B, C
    /// (if any) are a batch (A or B may be 2-D and broadcast).
    func matmul(_ c: Tensor, _ a: Tensor, transposeA: Bool, _ b: Tensor, transposeB: Bool, alpha: Float, beta: Float)
    /// Mixed precision (docs/cuda.md, "Precision"): c (M, N) f32 = a (M, K) f32 · w, w bf16 or f16
    /// ((N, K) used transposed, or (K, N)); a is rounded to w's dtype, products accumulate in f32.
    /// Tensor cores on CUDA; on the CPU an exact emulation (the reference). `workspace` holds at
    /// least mixedWorkspaceBytes(m:n:k:) bytes (any dtype).
    func matmulMixed(_ c: Tensor, _ a: Tensor, weight w: Tensor, transposeB: Bool, workspace: Tensor)
    /// matmulMixed with `a` already in w's dtype (an activation rounded once by convert and read by
    /// several GEMMs): the bits matmulMixed gives the f32 activation. Same workspace.
    func matmulHalf(_ c: Tensor, _ a: Tensor, weight w: Tensor, transposeB: Bool, workspace: Tensor)
    func mixedWorkspaceBytes(m: Int, n: Int, k: Int) -> Int
    /// f32 GEMMs on TF32 tensor cores (true) or in full f32; throws where the device has no TF32.
    func setTF32(_ on: Bool) throws
    /// The device allocator's own view (rounding, cache, library buffers); zeros on the CPU.
    var allocatorStats: AllocatorStats { get }
    /// The driver's free and total device memory (cudaMemGetInfo; free counts the allocator's
    /// cached blocks); nil on the CPU.
    var deviceMemory: (free: Int, total: Int)? { get }

    // Matrix optimizers (docs/optimizers.md).
    /// out = NS(src): `steps` Newton–Schulz iterations of polynomial `p` on the f32 matrix src
    /// (out may be src), using `workspace` (≥ newtonSchulzWorkspace(rows, cols) f32 elements).
    /// `bf16` lets a device use bf16 tensor-core operands (f32 accumulate); the CPU is always f32.
    func newtonSchulz(_ out: Tensor, from src: Tensor, _ p: NewtonSchulz, steps: Int, workspace: Tensor, bf16: Bool)
    /// NS of each of the `batch` same-shaped matrices of src (batch, rows, cols), stored one after
    /// another, into out of the same shape (out may be src), in the launches of one matrix
    /// (zt newton_schulz_batched). Each matrix gets newtonSchulz's bits on the CPU; a GPU may pick
    /// other GEMM kernels for another batch count (within NS's tolerance; the same grouping gives the
    /// same bits). `workspace` ≥ batch × newtonSchulzWorkspace(rows, cols) f32 elements.
    func newtonSchulzBatched(_ out: Tensor, from src: Tensor, _ p: NewtonSchulz, steps: Int, workspace: Tensor, bf16: Bool)
    /// x += alpha·d (x in its storage dtype, d f32 with x's element count).
    func addScaled(_ x: Tensor, _ d: Tensor, alpha: Float)
    /// Jaguar's probe: x += scale·s on the entries `selection` picks for (seed, tensorId).
    func jaguarProbe(_ x: Tensor, _ selection: JaguarSelection, seed: UInt64, tensorId: UInt32, scale: Float)
    /// One Jaguar pass over x and its f32 state (zt_jaguar.h).
    func jaguarUpdate(_ kind: JaguarKind, _ x: Tensor, state: Tensor, _ selection: JaguarSelection, seed: UInt64,
                      tensorId: UInt32, scalars: JaguarScalars)

    // DiZO's projection and Zoop's local update (docs/optimizers.md).
    /// out = a + alpha·(b − a), formed in f32 and rounded once to the common storage dtype (out may be b).
    func lerp(_ out: Tensor, _ a: Tensor, _ b: Tensor, alpha: Float)
    /// x (rows, cols) row r *= scales[r] (f32).
    func scaleRows(_ x: Tensor, by scales: Tensor)
    /// Σx² of an f32 tensor (deterministic on each device).
    func sumSquares(_ x: Tensor) -> Double
    /// Σ(a − b)² of two tensors of one float dtype, in double (deterministic on each device).
    func squaredDistance(_ a: Tensor, _ b: Tensor) -> Double
    /// Adam on the f32 direction d (zt_adam_direction_elem): m, v f32 with x's element count;
    /// uses `lr` (η_t/(1 − β₁ᵗ)), `decay`, `beta1`, `beta2`, `adamEps`, `bc2Sqrt` of the scalars.
    func adamDirection(_ x: Tensor, m: Tensor, v: Tensor, direction d: Tensor, scalars: ZOUpdateScalars)
}

/// The Newton–Schulz polynomials p(A) = aI + bA + cA² (X ← p(XXᵀ)X, so σ ← aσ + bσ³ + cσ⁵).
public enum NewtonSchulz: String, Sendable, Codable, CaseIterable {
    /// Muon's and the released ZO-Muon's (3.4445, −4.7750, 2.0315): fast, leaves σ in about [0.7, 1.13].
    case quintic
    /// Jaguar-Muon's (1.5, −0.5, 0): slower, converges to σ = 1.
    case cubic

    public var coefficients: (a: Float, b: Float, c: Float) {
        switch self {
        case .quintic: return (3.4445, -4.7750, 2.0315)
        case .cubic: return (1.5, -0.5, 0)
        }
    }

    /// FLOPs of one iteration on an m×n matrix (GEMMs only; r = min, n' = max).
    public func flopsPerIteration(rows: Int, cols: Int) -> Double {
        let r = Double(min(rows, cols)), n = Double(max(rows, cols))
        return 4 * r * r * n + (self == .quintic ? 2 * r * r * r : 0)
    }
}

/// The entries a Jaguar step probes in one tensor: the crossings of kRows of its rows and kCols of
/// its columns (a 1-D tensor is one row), drawn from the seeded stream (zt_jaguar.h).
public struct JaguarSelection: Sendable, Equatable {
    public let rows, cols, kRows, kCols: Int
    /// Rademacher signs on the selection (paper variants), else all +1 (released code).
    public let signs: Bool

    /// fraction of each dimension, at least one: the released code's n//10 is fraction 0.1.
    public init(shape: [Int], fraction: Double, signs: Bool) {
        let rows = shape.count >= 2 ? shape[0] : 1
        let cols = shape.count >= 2 ? shape.dropFirst().reduce(1, *) : (shape.first ?? 1)
        self.rows = rows
        self.cols = cols
        kRows = min(rows, max(1, Int((Double(rows) * fraction + 1e-9).rounded(.down))))
        kCols = min(cols, max(1, Int((Double(cols) * fraction + 1e-9).rounded(.down))))
        self.signs = signs
    }

    public var selectedCount: Int { kRows * kCols }
}

/// Which Jaguar pass runs (zt_jaguar_kind).
public enum JaguarKind: Int32, Sendable {
    /// Final paper: memory of the selection ← β·m + (1 − β)·ĝ·s; θ −= η·sign(m) everywhere.
    case sign = 1
    /// Released code: buf ← μ·buf + G (G on the selection, 0 elsewhere); θ −= η·buf.
    case sgd = 2
    /// Jaguar-Muon: memory of the selection only (θ restored); the update is NS(M) applied after.
    case memory = 3
}

/// The scalars of one Jaguar pass (zt_jaguar_args).
public struct JaguarScalars: Sendable, Equatable {
    public var a1: Float = 0, a2: Float = 0
    public var restore: Float = 0
    /// sign, memory: ĝ; sgd: G, the value of every selected gradient entry.
    public var g: Float = 0
    public var beta: Float = 0
    public var momentum: Float = 0
    public var lr: Float = 0
    public init() {}
}

/// The optimizers with a fused stateful update kernel.
public enum ZOUpdateKind: Int32, Sendable {
    case momentum = 1, adam = 2, hizoo = 3
    /// state1 = SGD buffer, state2 = a given f32 direction D (ZO-Muon's NS(g·Z)): buf = buf·μ + D, θ −= η·buf.
    case direction = 4
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

/// One tensor of a list-driven perturbation pass (Backend.streamList).
public struct StreamItem: Sendable {
    public let tensor: Tensor
    public let tensorId: UInt32
    /// restoreUpdate's decay (ηλ) for this tensor.
    public var decay: Float
    public init(_ tensor: Tensor, tensorId: UInt32, decay: Float = 0) { (self.tensor, self.tensorId, self.decay) = (tensor, tensorId, decay) }
}

/// One tensor and its f32 optimizer state for a list-driven fused update (Backend.zoUpdate).
public struct ZOStreamItem: Sendable {
    public let tensor: Tensor, state1: Tensor, state2: Tensor?
    public let tensorId: UInt32
    public var decay: Float
    public init(_ tensor: Tensor, state1: Tensor, state2: Tensor? = nil, tensorId: UInt32, decay: Float) {
        (self.tensor, self.state1, self.state2, self.tensorId, self.decay) = (tensor, state1, state2, tensorId, decay)
    }
}

/// Bytes a device allocator holds: `live` handed out (after its rounding), `cached` freed and kept
/// for reuse, `library` the kernel library's own buffers (cuBLAS workspaces).
public struct AllocatorStats: Sendable, Equatable {
    public var live = 0, cached = 0, library = 0
    public init(live: Int = 0, cached: Int = 0, library: Int = 0) { (self.live, self.cached, self.library) = (live, cached, library) }
    public var total: Int { live + cached + library }
}

extension Backend {
    /// A tensor on this backend, accounted under `tag`: zero-filled, or with `zeroed: false`
    /// left as allocated, for a buffer that is written in full before it is read (activations).
    public func allocate(_ shape: [Int], dtype: DType = .f32, tag: MemoryTag, zeroed: Bool = true) throws -> Tensor {
        let count = shape.reduce(1, *)
        let bytes = max(dtype.byteCount(count), 1)
        let pointer = try allocateRaw(bytes: bytes, zeroed: zeroed)
        ledger.allocated(bytes, tag: tag)
        let buffer = DeviceBuffer(pointer: pointer, bytes: bytes, tag: tag, backend: self)
        return Tensor(buffer: buffer, dtype: dtype, shape: shape)
    }

    /// An f32 tensor holding `values`.
    public func tensor(_ values: [Float], shape: [Int], tag: MemoryTag) throws -> Tensor {
        precondition(values.count == shape.reduce(1, *), "\(values.count) values for shape \(shape)")
        let t = try allocate(shape, dtype: .f32, tag: tag, zeroed: false)
        values.withUnsafeBytes { copy(t, fromHost: $0) }
        return t
    }

    /// An i32 or u8 tensor holding `values`.
    public func tensor<T: FixedWidthInteger>(_ values: [T], shape: [Int], tag: MemoryTag) throws -> Tensor {
        precondition(values.count == shape.reduce(1, *), "\(values.count) values for shape \(shape)")
        let dtype: DType = T.bitWidth == 32 ? .i32 : .u8
        precondition(T.bitWidth == dtype.size * 8, "integer tensors are i32 or u8")
        let t = try allocate(shape, dtype: dtype, tag: tag, zeroed: false)
        values.withUnsafeBytes { copy(t, fromHost: $0) }
        return t
    }

    /// The same, counting out-of-range ids on the device.
    public func embedding(_ out: Tensor, table: Tensor, ids: Tensor) throws {
        try embedding(out, table: table, ids: ids, checkedOnHost: false)
    }

    /// Rotary embedding without an attention factor.
    public func rope(_ x: Tensor, positions: Tensor, headDim: Int, rotaryDim: Int, invFreq: Tensor) {
        rope(x, positions: positions, headDim: headDim, rotaryDim: rotaryDim, invFreq: invFreq, scale: 1)
    }

    /// Causal attention without a sliding window or soft-capping.
    public func attention(_ out: Tensor, q: Tensor, k: Tensor, v: Tensor, keyLength: Int?, keyMask: Tensor?, scale: Float) {
        attention(out, q: q, k: k, v: v, keyLength: keyLength, keyMask: keyMask, scale: scale, window: 0, softcap: 0)
    }

    /// Causal attention without soft-capping.
    public func attention(_ out: Tensor, q: Tensor, k: Tensor, v: Tensor, keyLength: Int?, keyMask: Tensor?, scale: Float,
                          window: Int) {
        attention(out, q: q, k: k, v: v, keyLength: keyLength, keyMask: keyMask, scale: scale, window: window, softcap: 0)
    }

    /// `toHost` for a result the caller acts on (losses, log-probs): throws the device's failure,
    /// naming the first failing kernel, instead of returning values computed after it.
    public func read(_ t: Tensor) throws -> [Float] {
        let values = toHost(t)
        try checkErrors()
        return values
    }

    /// The tensor's elements as f32 on the host (converting f16/bf16).
    public func toHost(_ t: Tensor) -> [Float] {
        if let type = t.dtype.ggmlType {
            var raw = [UInt8](repeating: 0, count: t.bytes)
            raw.withUnsafeMutableBytes { copy(t, toHost: $0) }
            var out = [Float](repeating: 0, count: t.count)
            let rc = out.withUnsafeMutableBufferPointer { o in raw.withUnsafeBytes { zt_dequantize(o.baseAddress, $0.baseAddress, type, Int64(t.count)) } }
            precondition(rc == 0, "cannot decode \(t)")
            return out
        }
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

/// f32 elements of Newton–Schulz workspace for a rows × cols matrix, on every backend
/// (zt_newton_schulz_workspace).
public func newtonSchulzWorkspace(rows: Int, cols: Int) -> Int {
    let r = min(rows, cols), n = max(rows, cols)
    return 2 * r * n + 2 * r * r + (r * n + r * r + 1) / 2 + 64
}

extension Backend {
    /// NS of x in place with a workspace allocated for this call (tests, benchmarks).
    public func newtonSchulz(_ x: Tensor, _ p: NewtonSchulz, steps: Int, bf16: Bool = false) throws {
        precondition(x.rank == 2, "Newton–Schulz needs a matrix, got \(x)")
        let ws = try allocate([newtonSchulzWorkspace(rows: x.shape[0], cols: x.shape[1])], tag: .workspace)
        newtonSchulz(x, from: x, p, steps: steps, workspace: ws, bf16: bf16)
    }

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

/// How GEMMs treat the weights (docs/cuda.md, "Precision"; `--precision`).
public enum GemmPrecision: String, Sendable, CaseIterable {
    /// Every product in f32: f16/bf16 weights are widened into an f32 scratch copy first.
    case f32
    /// f16/bf16 weights used as stored, activations rounded to their type, f32 accumulation
    /// (tensor cores on CUDA; an exact emulation on the CPU); f32 weights in f32.
    case mixed
    /// As `mixed`, and f32 weights on TF32 tensor cores (CUDA only).
    case tf32

    /// `auto`: mixed on CUDA (tensor cores), f32 on the CPU (where mixed is only an emulation).
    public static func resolve(_ name: String, device: DeviceKind) throws -> GemmPrecision {
        if name == "auto" { return device == .cuda ? .mixed : .f32 }
        guard let p = GemmPrecision(rawValue: name) else {
            throw BackendError("--precision: unknown value '\(name)' (auto, f32, mixed, tf32)")
        }
        if p == .tf32 && device != .cuda { throw BackendError("--precision tf32 needs a CUDA device (this run is on the \(device))") }
        return p
    }
}
