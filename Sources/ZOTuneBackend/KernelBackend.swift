import Foundation
import ZOTuneKernels

/// A backend driven through a `zt_backend_api` function table: the CPU table (C kernels on the
/// worker pool, OpenBLAS) or the CUDA library's table. Shapes are validated here, once for every
/// device; the kernels trust them.
public final class KernelBackend: Backend, @unchecked Sendable {
    public let device: DeviceKind
    public let ledger: MemoryLedger
    public let summary: String
    let api: zt_backend_api

    init(device: DeviceKind, table: UnsafePointer<zt_backend_api>, summary: String, ledger: MemoryLedger) {
        self.device = device
        self.api = table.pointee
        self.summary = summary
        self.ledger = ledger
    }

    /// The CPU backend. `threads` sets the kernel pool size (nil: all online CPUs or ZOTUNE_NUM_THREADS).
    public static func cpu(threads: Int? = nil, ledger: MemoryLedger = MemoryLedger(name: "cpu")) -> KernelBackend {
        if let threads { zt_set_num_threads(Int32(threads)) }
        return KernelBackend(device: .cpu, table: zt_cpu_api(), summary: CPUInfo.summary, ledger: ledger)
    }

    /// Tests only: the CPU backend with table entry `kernel` failing as a CUDA launch does (nothing
    /// written, an error naming it returned by the next host read); nil for a kernel the hook cannot
    /// replace (zt_cpu_api_with_failing). One such backend at a time.
    public static func cpuWithFailingKernel(_ kernel: String) -> KernelBackend? {
        guard let table = zt_cpu_api_with_failing(kernel) else { return nil }
        return KernelBackend(device: .cpu, table: table, summary: "CPU with a failing \(kernel) (fault injection)",
                             ledger: MemoryLedger(name: "cpu"))
    }

    // MARK: errors
    // Kernels are asynchronous on a device and return nothing: a failed launch is reported by the
    // next call that waits for the device (a host copy, synchronize, a reduction's result) with the
    // first failing kernel's name. Most methods here cannot throw, so such a status is kept as this
    // backend's failure: the host bytes it should have produced are NaN (0xFF) rather than stale,
    // and `checkErrors` and `read` throw it. A failed device stays failed: every later check throws.

    private let failureLock = NSLock()
    private var failure: BackendError?

    /// Records a nonzero status of `what` as the backend's failure (the first one is kept).
    @discardableResult
    private func check(_ rc: Int32, _ what: String) -> Bool {
        guard rc != 0 else { return true }
        let reason = lastError(api)
        let error = BackendError("\(device == .cuda ? "CUDA" : "CPU") failure: \(reason.isEmpty ? "code \(rc)" : reason) (reported by the \(what))")
        failureLock.lock()
        if failure == nil { failure = error }
        failureLock.unlock()
        return false
    }

    public func checkErrors() throws {
        check(api.synchronize(), "synchronize")
        failureLock.lock()
        let f = failure
        failureLock.unlock()
        if let f { throw f }
    }

    // MARK: memory

    public func allocateRaw(bytes: Int, zeroed: Bool) throws -> UnsafeMutableRawPointer {
        var p: UnsafeMutableRawPointer?
        let rc = api.malloc(&p, bytes)
        guard rc == 0, let p else {
            throw BackendError("out of \(device) memory allocating \(formatBytes(bytes)) (\(formatBytes(ledger.snapshot.total.current)) in use)")
        }
        if zeroed && !check(api.memset(p, 0, bytes), "memset") { try checkErrors() }
        return p
    }

    public func release(_ pointer: UnsafeMutableRawPointer, bytes: Int) { _ = api.free(pointer) }

    public func copy(_ tensor: Tensor, fromHost source: UnsafeRawBufferPointer) {
        precondition(source.count == tensor.bytes, "copy of \(source.count) bytes into \(tensor)")
        if let base = source.baseAddress { check(api.memcpy_h2d(tensor.pointer, base, tensor.bytes), "host-to-device copy") }
    }

    public func copy(_ tensor: Tensor, toHost destination: UnsafeMutableRawBufferPointer) {
        precondition(destination.count == tensor.bytes, "copy of \(tensor) into \(destination.count) bytes")
        guard let base = destination.baseAddress else { return }
        if !check(api.memcpy_d2h(base, tensor.pointer, tensor.bytes), "device-to-host copy") {
            memset(base, 0xFF, tensor.bytes)  // NaN in every float dtype: never a plausible result
        }
    }

    public func copy(_ destination: Tensor, from source: Tensor) {
        precondition(destination.count == source.count && destination.dtype == source.dtype, "copy \(source) into \(destination)")
        check(api.memcpy_d2d(destination.pointer, source.pointer, source.bytes), "device copy")
    }

    public func synchronize() { check(api.synchronize(), "synchronize") }

    // MARK: perturbation stream

    public func perturb(_ x: Tensor, seed: UInt64, tensorId: UInt32, stream: UInt32, scale: Float) {
        api.perturb(x.pointer, x.dtype.code, Int64(x.count), UInt64(x.streamIndex), seed, tensorId, stream, scale)
    }

    public func restoreUpdate(_ x: Tensor, seed: UInt64, tensorId: UInt32, stream: UInt32, restore: Float, step: Float, decay: Float) {
        api.restore_update(x.pointer, x.dtype.code, Int64(x.count), UInt64(x.streamIndex), seed, tensorId, stream, restore, step, decay)
    }

    public func replayStep(_ x: Tensor, seed: UInt64, tensorId: UInt32, stream: UInt32, a1: Float, a2: Float, restore: Float, step: Float, decay: Float) {
        api.replay_step(x.pointer, x.dtype.code, Int64(x.count), UInt64(x.streamIndex), seed, tensorId, stream, a1, a2, restore, step, decay)
    }

    public func perturb(_ items: [StreamItem], seed: UInt64, stream: UInt32, scale: Float) {
        streamList(ZT_LIST_PERTURB, items, seed: seed, stream: stream, a: scale, step: 0)
    }

    public func restoreUpdate(_ items: [StreamItem], seed: UInt64, stream: UInt32, restore: Float, step: Float) {
        streamList(ZT_LIST_RESTORE_UPDATE, items, seed: seed, stream: stream, a: restore, step: step)
    }

    /// Tensors above this many elements get a launch of their own (it is long enough to hide the
    /// launch); the rest go through stream_list, grouped by dtype.
    static let listLimit = 1 << 18

    private func streamList(_ op: Int, _ items: [StreamItem], seed: UInt64, stream: UInt32, a: Float, step: Float) {
        batchedByDtype(items, tensor: { $0.tensor }, alone: { it in
            if op == ZT_LIST_PERTURB { self.perturb(it.tensor, seed: seed, tensorId: it.tensorId, stream: stream, scale: a) }
            else { self.restoreUpdate(it.tensor, seed: seed, tensorId: it.tensorId, stream: stream, restore: a, step: step, decay: it.decay) }
        }, item: { it in
            let x = it.tensor
            return zt_list_item(x: x.pointer, n: Int64(x.count), first: UInt64(x.streamIndex), tensor_id: it.tensorId, decay: it.decay)
        }, launch: { dtype, list, count in self.api.stream_list(Int32(op), list, count, dtype, seed, stream, a, step) })
    }

    /// The list-driven passes' one split (stream_list, zo_update_list): a tensor above `listLimit`
    /// elements gets its own launch, the rest one list launch per dtype, in dtype-code order (the
    /// same launches every step).
    private func batchedByDtype<Item, Entry>(_ items: [Item], tensor: (Item) -> Tensor, alone: (Item) -> Void,
                                             item: (Item) -> Entry,
                                             launch: (zt_dtype, UnsafePointer<Entry>?, Int32) -> Void) {
        var small: [zt_dtype: [Entry]] = [:]
        for it in items {
            let x = tensor(it)
            if x.count > Self.listLimit { alone(it) } else { small[x.dtype.code, default: []].append(item(it)) }
        }
        for (dtype, list) in small.sorted(by: { $0.key < $1.key }) {
            list.withUnsafeBufferPointer { launch(dtype, $0.baseAddress, Int32(list.count)) }
        }
    }

    public func perturbedCopy(into out: Tensor, from source: Tensor, seed: UInt64, tensorId: UInt32, stream: UInt32, scale: Float) {
        precondition(out.count == source.count, "perturbed copy of \(source) into \(out)")
        api.perturbed_copy(out.pointer, out.dtype.code, source.pointer, source.dtype.code, Int64(source.count),
                           UInt64(source.streamIndex), seed, tensorId, stream, scale)
    }

    public func fillNormal(_ out: Tensor, first: Int, seed: UInt64, tensorId: UInt32, stream: UInt32, scale: Float) {
        api.fill_normal(out.pointer, out.dtype.code, Int64(out.count), UInt64(first), seed, tensorId, stream, scale)
    }

    public func fillNormal(_ out: Tensor, seed: UInt64, tensorId: UInt32, stream: UInt32, scale: Float) {
        api.fill_normal(out.pointer, out.dtype.code, Int64(out.count), UInt64(out.streamIndex), seed, tensorId, stream, scale)
    }

    public func zoUpdate(_ kind: ZOUpdateKind, _ x: Tensor, state1: Tensor, state2: Tensor?, seed: UInt64, tensorId: UInt32,
                         stream: UInt32, scalars s: ZOUpdateScalars) {
        precondition(state1.dtype == .f32 && state1.count == x.count, "optimizer state \(state1) for \(x)")
        precondition((state2 != nil) == (kind == .adam || kind == .direction), "second state tensor is Adam's v or the direction D")
        if let state2 { precondition(state2.dtype == .f32 && state2.count == x.count, "optimizer state \(state2) for \(x)") }
        var args = zt_zo_update_args(a1: s.a1, a2: s.a2, restore: s.restore, g: s.g, lr: s.lr, decay: s.decay, beta1: s.beta1,
                                     beta2: s.beta2, adam_eps: s.adamEps, bc2_sqrt: s.bc2Sqrt, curvature: s.curvature, keep: s.keep)
        api.zo_update(kind.rawValue, x.pointer, x.dtype.code, state1.f32, state2?.f32, Int64(x.count), UInt64(x.streamIndex),
                      seed, tensorId, stream, &args)
    }

    public func zoUpdate(_ kind: ZOUpdateKind, _ items: [ZOStreamItem], seed: UInt64, stream: UInt32, scalars: ZOUpdateScalars) {
        let s = scalars
        var args = zt_zo_update_args(a1: s.a1, a2: s.a2, restore: s.restore, g: s.g, lr: s.lr, decay: s.decay, beta1: s.beta1,
                                     beta2: s.beta2, adam_eps: s.adamEps, bc2_sqrt: s.bc2Sqrt, curvature: s.curvature, keep: s.keep)
        batchedByDtype(items, tensor: { $0.tensor }, alone: { it in
            var s = scalars
            s.decay = it.decay
            self.zoUpdate(kind, it.tensor, state1: it.state1, state2: it.state2, seed: seed, tensorId: it.tensorId, stream: stream, scalars: s)
        }, item: { it in
            let x = it.tensor
            precondition(it.state1.dtype == .f32 && it.state1.count == x.count, "optimizer state \(it.state1) for \(x)")
            precondition((it.state2 != nil) == (kind == .adam || kind == .direction), "second state tensor is Adam's v or the direction D")
            if let s2 = it.state2 { precondition(s2.dtype == .f32 && s2.count == x.count, "optimizer state \(s2) for \(x)") }
            return zt_zo_list_item(x: x.pointer, s1: it.state1.f32, s2: it.state2?.f32, n: Int64(x.count),
                                   first: UInt64(x.streamIndex), tensor_id: it.tensorId, decay: it.decay)
        }, launch: { dtype, list, count in self.api.zo_update_list(kind.rawValue, list, count, dtype, seed, stream, &args) })
    }

    public func perturbHessian(_ x: Tensor, h: Tensor, seed: UInt64, tensorId: UInt32, stream: UInt32, scale: Float) {
        precondition(h.dtype == .f32 && h.count == x.count, "Hessian \(h) for \(x)")
        api.perturb_hessian(x.pointer, x.dtype.code, h.f32, Int64(x.count), UInt64(x.streamIndex), seed, tensorId, stream, scale)
    }

    public func convert(into destination: Tensor, from source: Tensor) {
        precondition(destination.count == source.count, "convert \(source) into \(destination)")
        if let type = source.dtype.ggmlType {
            // A quantized matrix (rows, cols) into f32 (or bf16/f16 for a mixed GEMM), whole blocks per row.
            precondition(destination.dtype.isFloat && source.rank == 2, "dequantize \(source) into \(destination)")
            let (rows, cols) = (source.shape[0], source.shape[1])
            let rc = api.dequantize_rows(destination.pointer, destination.dtype.code, source.pointer, type, Int64(rows), Int64(cols),
                                         nil, Int64(rows), 0)
            if rc != 0 { check(-1, "dequantize \(source)") }  // kept as the backend's failure
            return
        }
        api.convert(destination.pointer, destination.dtype.code, source.pointer, source.dtype.code, Int64(source.count))
    }

    // MARK: elementwise

    public func add(_ out: Tensor, _ a: Tensor, _ b: Tensor) {
        checkSame(out, a, b)
        api.add(out.f32, a.f32, b.f32, Int64(out.count))
    }

    public func mul(_ out: Tensor, _ a: Tensor, _ b: Tensor) {
        checkSame(out, a, b)
        api.mul(out.f32, a.f32, b.f32, Int64(out.count))
    }

    public func scale(_ out: Tensor, _ a: Tensor, by s: Float) {
        checkSame(out, a)
        api.scale(out.f32, a.f32, s, Int64(out.count))
    }

    public func addRows(_ x: Tensor, bias: Tensor) {
        let dim = bias.count
        precondition(x.rank >= 1 && x.shape.last == dim, "bias \(bias.shape) for \(x.shape)")
        api.add_rows(x.f32, bias.f32, Int64(x.count / max(dim, 1)), Int64(dim))
    }

    public func activation(_ kind: Activation, _ out: Tensor, _ x: Tensor) {
        checkSame(out, x)
        let n = Int64(x.count)
        switch kind {
        case .relu: api.relu(out.f32, x.f32, n)
        case .silu: api.silu(out.f32, x.f32, n)
        case .geluTanh: api.gelu_tanh(out.f32, x.f32, n)
        case .geluErf: api.gelu_erf(out.f32, x.f32, n)
        }
    }

    public func swiglu(_ out: Tensor, gate: Tensor, up: Tensor) {
        checkSame(out, gate, up)
        api.swiglu(out.f32, gate.f32, up.f32, Int64(out.count))
    }

    public func softcap(_ x: Tensor, cap: Float) {
        precondition(cap > 0 && cap.isFinite, "softcap \(cap) must be positive and finite")
        api.softcap(x.f32, Int64(x.count), cap)
    }

    // MARK: rows

    public func softmax(_ out: Tensor, _ x: Tensor) {
        checkSame(out, x)
        let (rows, dim) = rowsAndDim(x)
        api.softmax(out.f32, x.f32, rows, dim)
    }

    public func logSoftmax(_ out: Tensor, _ x: Tensor) {
        checkSame(out, x)
        let (rows, dim) = rowsAndDim(x)
        api.log_softmax(out.f32, x.f32, rows, dim)
    }

    public func logSumExpPanel(_ state: Tensor, _ x: Tensor, ldx: Int, cols: Int, col0: Int, targets: Tensor) {
        let rows = targets.count
        precondition(state.dtype == .f32 && state.count == 3 * rows && x.dtype == .f32 && targets.dtype == .i32 && cols <= ldx
                     && (rows == 0 || (rows - 1) * ldx + cols <= x.count), "logSumExpPanel: \(x) (ld \(ldx), \(cols) columns) for \(rows) rows")
        api.logsumexp_panel(state.f32, x.f32, Int64(ldx), targets.i32, Int64(rows), Int64(cols), Int64(col0))
    }

    public func tokenLogProbs(_ out: Tensor, _ x: Tensor, targets: Tensor) {
        let (rows, dim) = rowsAndDim(x)
        precondition(x.dtype == .f32 && out.dtype == .f32 && targets.dtype == .i32 && out.count == Int(rows) && targets.count == Int(rows),
                     "tokenLogProbs: \(x) with \(targets) into \(out)")
        api.token_logprobs(out.f32, x.f32, targets.i32, rows, dim)
    }

    public func layerNorm(_ out: Tensor, _ x: Tensor, gamma: Tensor?, beta: Tensor?, eps: Float) {
        checkSame(out, x)
        let (rows, dim) = rowsAndDim(x)
        precondition((gamma.map { $0.count == Int(dim) } ?? true) && (beta.map { $0.count == Int(dim) } ?? true),
                     "layernorm parameters do not match dim \(dim)")
        api.layernorm(out.f32, x.f32, gamma?.f32, beta?.f32, rows, dim, eps)
    }

    public func rmsNorm(_ out: Tensor, _ x: Tensor, gamma: Tensor?, eps: Float) {
        checkSame(out, x)
        let (rows, dim) = rowsAndDim(x)
        precondition(gamma.map { $0.count == Int(dim) } ?? true, "rmsnorm gain does not match dim \(dim)")
        api.rmsnorm(out.f32, x.f32, gamma?.f32, rows, dim, eps)
    }

    public func rmsNormHalf(_ out: Tensor?, half: Tensor, _ x: Tensor, gamma: Tensor?, eps: Float) {
        if let out { checkSame(out, x) }
        precondition((half.dtype == .bf16 || half.dtype == .f16) && half.count == x.count, "rounded rmsnorm output \(half) for \(x)")
        let (rows, dim) = rowsAndDim(x)
        precondition(gamma.map { $0.count == Int(dim) } ?? true, "rmsnorm gain does not match dim \(dim)")
        check(api.rmsnorm_half(out?.f32, half.pointer, half.dtype.code, x.f32, gamma?.f32, rows, dim, eps), "rmsnorm_half")
    }

    public func swigluHalf(_ out: Tensor?, half: Tensor, gate: Tensor, up: Tensor) {
        if let out { checkSame(out, gate, up) } else { checkSame(gate, up) }
        precondition((half.dtype == .bf16 || half.dtype == .f16) && half.count == gate.count, "rounded swiglu output \(half) for \(gate)")
        check(api.swiglu_half(out?.f32, half.pointer, half.dtype.code, gate.f32, up.f32, Int64(gate.count)), "swiglu_half")
    }

    public func layerNormHalf(_ out: Tensor?, half: Tensor, _ x: Tensor, gamma: Tensor?, beta: Tensor?, eps: Float) {
        if let out { checkSame(out, x) }
        precondition((half.dtype == .bf16 || half.dtype == .f16) && half.count == x.count, "rounded layernorm output \(half) for \(x)")
        let (rows, dim) = rowsAndDim(x)
        precondition((gamma.map { $0.count == Int(dim) } ?? true) && (beta.map { $0.count == Int(dim) } ?? true),
                     "layernorm parameters do not match dim \(dim)")
        check(api.layernorm_half(out?.f32, half.pointer, half.dtype.code, x.f32, gamma?.f32, beta?.f32, rows, dim, eps), "layernorm_half")
    }

    public func activationHalf(_ kind: Activation, _ out: Tensor?, half: Tensor, _ x: Tensor, times: Tensor?) {
        if let out { checkSame(out, x) }
        if let times { checkSame(times, x) }
        precondition((half.dtype == .bf16 || half.dtype == .f16) && half.count == x.count, "rounded \(kind) output \(half) for \(x)")
        let act: zt_activation_kind = switch kind {
        case .relu: ZT_ACT_RELU
        case .silu: ZT_ACT_SILU
        case .geluTanh: ZT_ACT_GELU_TANH
        case .geluErf: ZT_ACT_GELU_ERF
        }
        check(api.activation_half(Int32(act.rawValue), out?.f32, half.pointer, half.dtype.code, x.f32, times?.f32, Int64(x.count)),
              "activation_half")
    }

    // MARK: matrix optimizers

    public func newtonSchulz(_ out: Tensor, from src: Tensor, _ p: NewtonSchulz, steps: Int, workspace: Tensor, bf16: Bool) {
        precondition(src.rank == 2 && src.dtype == .f32 && out.dtype == .f32 && out.count == src.count,
                     "Newton–Schulz needs an f32 matrix and an f32 output of its size, got \(src) → \(out)")
        let (rows, cols) = (src.shape[0], src.shape[1])
        precondition(workspace.dtype == .f32 && workspace.count >= newtonSchulzWorkspace(rows: rows, cols: cols),
                     "Newton–Schulz workspace \(workspace) too small for \(rows)×\(cols)")
        let (a, b, c) = p.coefficients
        check(api.newton_schulz(src.f32, out.f32, Int64(rows), Int64(cols), Int32(steps), a, b, c, bf16 ? 1 : 0, workspace.f32),
              "Newton–Schulz")
    }

    public func newtonSchulzBatched(_ out: Tensor, from src: Tensor, _ p: NewtonSchulz, steps: Int, workspace: Tensor, bf16: Bool) {
        precondition(src.rank == 3 && src.dtype == .f32 && out.dtype == .f32 && out.shape == src.shape,
                     "batched Newton–Schulz needs f32 (batch, rows, cols) source and output, got \(src) → \(out)")
        let (batch, rows, cols) = (src.shape[0], src.shape[1], src.shape[2])
        precondition(workspace.dtype == .f32 && workspace.count >= batch * newtonSchulzWorkspace(rows: rows, cols: cols),
                     "Newton–Schulz workspace \(workspace) too small for \(batch) × \(rows)×\(cols)")
        let (a, b, c) = p.coefficients
        check(api.newton_schulz_batched(src.f32, out.f32, Int64(batch), Int64(rows), Int64(cols), Int32(steps), a, b, c,
                                        bf16 ? 1 : 0, workspace.f32), "Newton–Schulz (batched)")
    }

    public func addScaled(_ x: Tensor, _ d: Tensor, alpha: Float) {
        precondition(d.dtype == .f32 && d.count == x.count && x.dtype.isFloat, "addScaled: \(d) into \(x)")
        api.add_scaled(x.pointer, x.dtype.code, Int64(x.count), alpha, d.f32)
    }

    public func lerp(_ out: Tensor, _ a: Tensor, _ b: Tensor, alpha: Float) {
        precondition(out.dtype.isFloat && a.dtype == out.dtype && b.dtype == out.dtype && a.count == out.count && b.count == out.count,
                     "lerp of \(a) and \(b) into \(out)")
        api.lerp(out.pointer, out.dtype.code, a.pointer, b.pointer, Int64(out.count), alpha)
    }

    public func scaleRows(_ x: Tensor, by scales: Tensor) {
        precondition(x.dtype == .f32 && scales.dtype == .f32 && x.rank >= 2 && scales.count == x.count / x.shape.last!,
                     "scaleRows of \(x) by \(scales)")
        api.scale_rows(x.f32, Int64(scales.count), Int64(x.shape.last!), scales.f32)
    }

    public func sumSquares(_ x: Tensor) -> Double {
        precondition(x.dtype == .f32, "sumSquares of \(x)")
        var out = 0.0
        return check(api.sum_squares(x.f32, Int64(x.count), &out), "sum of squares") ? out : .nan
    }

    public func squaredDistance(_ a: Tensor, _ b: Tensor) -> Double {
        precondition(a.dtype.isFloat && a.dtype == b.dtype && a.count == b.count, "squaredDistance of \(a) and \(b)")
        var out = 0.0
        return check(api.squared_distance(a.pointer, b.pointer, a.dtype.code, Int64(a.count), &out), "squared distance") ? out : .nan
    }

    public func adamDirection(_ x: Tensor, m: Tensor, v: Tensor, direction d: Tensor, scalars s: ZOUpdateScalars) {
        precondition(x.dtype.isFloat && [m, v, d].allSatisfy { $0.dtype == .f32 && $0.count == x.count },
                     "Adam state \(m), \(v) and direction \(d) for \(x)")
        var args = zt_zo_update_args(a1: 0, a2: 0, restore: 0, g: 0, lr: s.lr, decay: s.decay, beta1: s.beta1,
                                     beta2: s.beta2, adam_eps: s.adamEps, bc2_sqrt: s.bc2Sqrt, curvature: 0, keep: 1)
        api.adam_direction(x.pointer, x.dtype.code, m.f32, v.f32, d.f32, Int64(x.count), &args)
    }

    private func jaguarArgs(_ x: Tensor, _ sel: JaguarSelection, _ s: JaguarScalars) -> zt_jaguar_args {
        precondition(sel.rows * sel.cols == x.count && sel.kRows >= 1 && sel.kRows <= sel.rows && sel.kCols >= 1
                     && sel.kCols <= sel.cols && sel.rows < Int(Int32.max) && sel.cols < Int(Int32.max),
                     "Jaguar selection \(sel) for \(x)")
        return zt_jaguar_args(rows: Int64(sel.rows), cols: Int64(sel.cols), k_rows: Int64(sel.kRows), k_cols: Int64(sel.kCols),
                              signs: sel.signs ? 1 : 0, a1: s.a1, a2: s.a2, restore: s.restore, g: s.g, beta: s.beta,
                              momentum: s.momentum, lr: s.lr)
    }

    public func jaguarProbe(_ x: Tensor, _ selection: JaguarSelection, seed: UInt64, tensorId: UInt32, scale: Float) {
        var args = jaguarArgs(x, selection, JaguarScalars())
        api.jaguar_probe(x.pointer, x.dtype.code, UInt64(x.streamIndex), seed, tensorId, &args, scale)
    }

    public func jaguarUpdate(_ kind: JaguarKind, _ x: Tensor, state: Tensor, _ selection: JaguarSelection, seed: UInt64,
                             tensorId: UInt32, scalars: JaguarScalars) {
        precondition(state.dtype == .f32 && state.count == x.count, "Jaguar state \(state) for \(x)")
        var args = jaguarArgs(x, selection, scalars)
        api.jaguar_update(kind.rawValue, x.pointer, x.dtype.code, state.f32, UInt64(x.streamIndex), seed, tensorId, &args)
    }

    // MARK: transformer pieces

    public func embedding(_ out: Tensor, table: Tensor, ids: Tensor, checkedOnHost: Bool) throws {
        precondition(table.rank == 2 && ids.dtype == .i32 && out.count == ids.count * table.shape[1],
                     "embedding \(table.shape)[\(ids.shape)] → \(out.shape)")
        let vocab = table.shape[0]
        if let type = table.dtype.ggmlType {
            let bad = api.dequantize_rows(out.f32, DType.f32.code, table.pointer, type, Int64(vocab), Int64(table.shape[1]), ids.i32,
                                          Int64(ids.count), checkedOnHost ? 0 : 1)
            if bad < 0 { check(-1, "embedding from a \(table.dtype) table"); try checkErrors() }
            if bad != 0 {
                try checkErrors()  // ids uploaded after a failed kernel are not to be trusted
                throw BackendError("\(bad) token id(s) outside the embedding table (vocab \(vocab))")
            }
            return
        }
        let bad = api.embedding(out.f32, table.pointer, table.dtype.code, Int64(vocab), Int64(table.shape[1]),
                                ids.i32, Int64(ids.count), checkedOnHost ? 0 : 1)
        if bad < 0 { check(-1, "embedding"); try checkErrors() }
        if bad != 0 {
            try checkErrors()  // ids uploaded after a failed kernel are not to be trusted
            throw BackendError("\(bad) token id(s) outside the embedding table (vocab \(vocab))")
        }
    }

    public func rope(_ x: Tensor, positions: Tensor, headDim: Int, rotaryDim: Int, invFreq: Tensor, scale: Float) {
        let tokens = positions.count
        precondition(positions.dtype == .i32 && tokens > 0 && x.count % (tokens * headDim) == 0,
                     "rope: \(x.shape) for \(tokens) positions")
        precondition(rotaryDim % 2 == 0 && rotaryDim <= headDim && invFreq.count == rotaryDim / 2, "rope: rotary dim \(rotaryDim)")
        let heads = x.count / (tokens * headDim)
        api.rope(x.f32, positions.i32, Int64(tokens), Int64(heads), Int64(headDim), Int64(rotaryDim), invFreq.f32, scale)
    }

    public func attention(_ out: Tensor, q: Tensor, k: Tensor, v: Tensor, keyLength: Int?, keyMask: Tensor?, scale: Float,
                          window: Int, softcap: Float) {
        let a = attentionArguments(out, q: q, k: k, v: v, keyLength: keyLength, keyMask: keyMask, window: window, softcap: softcap)
        api.attention(out.f32, q.f32, k.f32, v.f32, keyMask?.pointer.assumingMemoryBound(to: UInt8.self),
                      a.b, a.t, a.s, a.cap, a.hq, a.hkv, a.d, scale, Int64(window), softcap)
    }

    /// attention's and attentionHalf's shape checks, and the sizes they pass.
    private func attentionArguments(_ out: Tensor, q: Tensor, k: Tensor, v: Tensor, keyLength: Int?, keyMask: Tensor?, window: Int,
                                    softcap: Float) -> (b: Int64, t: Int64, s: Int64, cap: Int64, hq: Int64, hkv: Int64, d: Int64) {
        // q, out (B, T, Hq, D); k, v (B, S_cap, Hkv, D); keyMask (B, S_cap) u8
        precondition(q.rank == 4 && k.rank == 4 && k.shape == v.shape && out.shape == q.shape,
                     "attention shapes q \(q.shape) k \(k.shape) v \(v.shape) out \(out.shape)")
        let (b, t, hq, d) = (q.shape[0], q.shape[1], q.shape[2], q.shape[3])
        let (cap, hkv) = (k.shape[1], k.shape[2])
        let s = keyLength ?? cap
        precondition(k.shape[0] == b && k.shape[3] == d && s >= t && s <= cap && hkv > 0 && hq % hkv == 0,
                     "attention shapes q \(q.shape) k \(k.shape) with \(s) keys")
        precondition(keyMask.map { $0.dtype == .u8 && $0.count == b * cap } ?? true,
                     "attention key mask must be u8 (B, S_cap) = (\(b), \(cap))")
        precondition(window >= 0, "attention window \(window) must be ≥ 0 (0: no window)")
        precondition(softcap >= 0 && softcap.isFinite, "attention softcap \(softcap) must be finite and ≥ 0 (0: none)")
        return (Int64(b), Int64(t), Int64(s), Int64(cap), Int64(hq), Int64(hkv), Int64(d))
    }

    public func attentionHalf(_ out: Tensor, half: Tensor, q: Tensor, k: Tensor, v: Tensor, keyLength: Int?, keyMask: Tensor?,
                              scale: Float, window: Int, softcap: Float) {
        precondition((half.dtype == .bf16 || half.dtype == .f16) && half.count == out.count, "rounded attention output \(half) for \(out)")
        let args = attentionArguments(out, q: q, k: k, v: v, keyLength: keyLength, keyMask: keyMask, window: window, softcap: softcap)
        check(api.attention_half(out.f32, half.pointer, half.dtype.code, q.f32, k.f32, v.f32, keyMask?.pointer.assumingMemoryBound(to: UInt8.self),
                                 args.b, args.t, args.s, args.cap, args.hq, args.hkv, args.d, scale, Int64(window), softcap), "attention_half")
    }

    public func copy2D(_ dst: Tensor, ldd: Int, from src: Tensor, lds: Int, rows: Int, cols: Int) {
        guard rows > 0, cols > 0 else { return }
        precondition(cols <= ldd && cols <= lds && (rows - 1) * ldd + cols <= dst.count && (rows - 1) * lds + cols <= src.count,
                     "copy2D of \(rows)×\(cols) from \(src) (ld \(lds)) into \(dst) (ld \(ldd))")
        api.copy_2d(dst.f32, Int64(ldd), src.f32, Int64(lds), Int64(rows), Int64(cols))
    }

    public func matmul(_ c: Tensor, _ a: Tensor, transposeA: Bool, _ b: Tensor, transposeB: Bool, alpha: Float, beta: Float) {
        let g = GemmGeometry(c: c, a: a, transposeA: transposeA, b: b, transposeB: transposeB)
        let (ta, tb): (Int32, Int32) = (transposeA ? 1 : 0, transposeB ? 1 : 0)
        if g.batch == 1 {
            check(api.sgemm(ta, tb, g.m, g.n, g.k, alpha, a.f32, g.lda, b.f32, g.ldb, beta, c.f32, g.ldc), "sgemm")
        } else {
            check(api.sgemm_strided_batched(ta, tb, g.m, g.n, g.k, alpha, a.f32, g.lda, g.strideA, b.f32, g.ldb, g.strideB,
                                            beta, c.f32, g.ldc, g.strideC, g.batch), "batched sgemm")
        }
    }

    public func matmulMixed(_ c: Tensor, _ a: Tensor, weight w: Tensor, transposeB: Bool, workspace: Tensor) {
        precondition(w.dtype == .bf16 || w.dtype == .f16, "mixed-precision GEMM takes bf16 or f16 weights, got \(w)")
        precondition(a.dtype == .f32 && c.dtype == .f32 && w.rank == 2 && a.rank >= 2 && c.rank >= 2,
                     "mixed-precision GEMM shapes \(a.shape) × \(w.shape) → \(c.shape)")
        let k = a.shape[a.rank - 1], m = a.count / max(k, 1)
        let n = transposeB ? w.shape[0] : w.shape[1]
        precondition((transposeB ? w.shape[1] : w.shape[0]) == k && c.count == m * n && c.shape[c.rank - 1] == n,
                     "mixed-precision GEMM shapes \(a.shape) × \(w.shape)\(transposeB ? "ᵀ" : "") → \(c.shape)")
        precondition(workspace.bytes >= mixedWorkspaceBytes(m: m, n: n, k: k), "mixed-precision GEMM workspace \(workspace) too small")
        check(api.gemm_mixed(transposeB ? 1 : 0, Int64(m), Int64(n), Int64(k), 1, a.f32, Int64(k), w.pointer, w.dtype.code,
                             Int64(w.shape[1]), 0, c.f32, Int64(n), workspace.pointer), "mixed-precision GEMM")
    }

    public func matmulHalf(_ c: Tensor, _ a: Tensor, weight w: Tensor, transposeB: Bool, workspace: Tensor) {
        precondition((w.dtype == .bf16 || w.dtype == .f16) && a.dtype == w.dtype && c.dtype == .f32 && w.rank == 2 && a.rank >= 2,
                     "half GEMM takes activations and weights of one 16-bit dtype: \(a) × \(w) → \(c)")
        let k = a.shape[a.rank - 1], m = a.count / max(k, 1)
        let n = transposeB ? w.shape[0] : w.shape[1]
        precondition((transposeB ? w.shape[1] : w.shape[0]) == k && c.count == m * n && c.shape[c.rank - 1] == n,
                     "half GEMM shapes \(a.shape) × \(w.shape)\(transposeB ? "ᵀ" : "") → \(c.shape)")
        precondition(workspace.bytes >= mixedWorkspaceBytes(m: m, n: n, k: k), "half GEMM workspace \(workspace) too small")
        check(api.gemm_half(transposeB ? 1 : 0, Int64(m), Int64(n), Int64(k), 1, a.pointer, Int64(k), w.pointer, w.dtype.code,
                            Int64(w.shape[1]), 0, c.f32, Int64(n), workspace.pointer), "half GEMM")
    }

    public func mixedWorkspaceBytes(m: Int, n: Int, k: Int) -> Int { api.gemm_mixed_workspace(Int64(m), Int64(n), Int64(k)) }

    public func setTF32(_ on: Bool) throws {
        guard api.set_tf32(on ? 1 : 0) == 0 else { throw BackendError("TF32 needs a CUDA device (\(device) has no tensor cores)") }
    }

    public var allocatorStats: AllocatorStats {
        var (live, cached, library) = (0, 0, 0)
        guard api.memory_stats(&live, &cached, &library) == 0 else { return AllocatorStats() }
        return AllocatorStats(live: live, cached: cached, library: library)
    }

    public var deviceMemory: (free: Int, total: Int)? {
        guard device != .cpu else { return nil }
        var (free, total) = (0, 0)
        return api.mem_info(&free, &total) == 0 ? (free, total) : nil
    }

    // MARK: checks

    private func checkSame(_ ts: Tensor...) {
        let n = ts[0].count
        precondition(ts.allSatisfy { $0.count == n && $0.dtype == .f32 }, "elementwise operands differ: \(ts)")
    }

    private func rowsAndDim(_ x: Tensor) -> (Int64, Int64) {
        let dim = x.shape.last ?? 1
        return (Int64(dim == 0 ? 0 : x.count / dim), Int64(dim))
    }
}

/// Shapes and strides of a (batched) row-major GEMM on the last two dimensions; leading dimensions
/// are a batch, and A or B may be a single matrix broadcast over it.
public struct GemmGeometry: Sendable {
    public let m, n, k, lda, ldb, ldc, batch, strideA, strideB, strideC: Int64

    public init(c: Tensor, a: Tensor, transposeA: Bool, b: Tensor, transposeB: Bool) {
        precondition(a.rank >= 2 && b.rank >= 2 && c.rank >= 2, "matmul needs matrices: \(a.shape) \(b.shape) → \(c.shape)")
        precondition(a.dtype == .f32 && b.dtype == .f32 && c.dtype == .f32, "matmul is f32")
        let (ar, ac) = (a.shape[a.rank - 2], a.shape[a.rank - 1])
        let (br, bc) = (b.shape[b.rank - 2], b.shape[b.rank - 1])
        let (m, ka) = transposeA ? (ac, ar) : (ar, ac)
        let (kb, n) = transposeB ? (bc, br) : (br, bc)
        precondition(ka == kb && c.shape[c.rank - 2] == m && c.shape[c.rank - 1] == n,
                     "matmul shapes \(a.shape)\(transposeA ? "ᵀ" : "") × \(b.shape)\(transposeB ? "ᵀ" : "") → \(c.shape)")
        let batch = c.count / max(m * n, 1)
        let batchA = a.count / max(ar * ac, 1), batchB = b.count / max(br * bc, 1)
        precondition((batchA == batch || batchA == 1) && (batchB == batch || batchB == 1),
                     "matmul batch \(a.shape) × \(b.shape) → \(c.shape)")
        self.m = Int64(m); self.n = Int64(n); self.k = Int64(ka)
        lda = Int64(ac); ldb = Int64(bc); ldc = Int64(n)
        self.batch = Int64(batch)
        strideA = batchA == 1 ? 0 : Int64(ar * ac)
        strideB = batchB == 1 ? 0 : Int64(br * bc)
        strideC = Int64(m * n)
    }
}

/// Facts about the CPU side: kernel threads and OpenBLAS.
public enum CPUInfo {
    public static var kernelThreads: Int { Int(zt_num_threads()) }
    public static var blasThreads: Int { Int(zt_blas_num_threads()) }
    public static var blasConfig: String { String(cString: zt_blas_config()).trimmingCharacters(in: .whitespaces) }
    public static var summary: String {
        "CPU: \(kernelThreads) kernel threads; OpenBLAS \(blasThreads) threads (\(blasConfig))"
    }

    /// Nominal f32 FMA peak: online cores × clock (/proc/cpuinfo) × flops per cycle (2 FMA units
    /// of 8 lanes with AVX2, 16 with AVX-512). An estimate: turbo and VM clocks differ.
    public static var nominalPeakGflops: Double? {
        guard let info = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
              let mhzLine = info.split(separator: "\n").first(where: { $0.hasPrefix("cpu MHz") }),
              let mhz = Double(mhzLine.split(separator: ":").last?.trimmingCharacters(in: .whitespaces) ?? "")
        else { return nil }
        let flags = info.split(separator: "\n").first(where: { $0.hasPrefix("flags") }) ?? ""
        let flopsPerCycle: Double = flags.contains(" avx512f") ? 64 : flags.contains(" fma") ? 32 : 8
        return Double(ProcessInfo.processInfo.activeProcessorCount) * mhz * 1e-3 * flopsPerCycle
    }
}

/// The table's last error message ("" when none).
func lastError(_ api: zt_backend_api) -> String {
    api.last_error().map { String(cString: $0) } ?? ""
}
