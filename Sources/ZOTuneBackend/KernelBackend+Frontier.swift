import Foundation
import ZOTuneKernels

/// The direction a `streamSum` term regenerates (zt_frontier.h).
public enum SumDirection: Int32, Sendable {
    /// ±1 from Philox bits (FZOO's probes).
    case rademacher = 1
    /// z, the normals of the weights stream (MeZO-SVRG).
    case normal = 2
}

/// One term of `streamSum`: coef · direction(seed, tensor, stream).
public struct SumTerm: Sendable, Equatable {
    public var seed: UInt64
    public var stream: UInt32
    public var coef: Float
    public init(seed: UInt64, stream: UInt32, coef: Float) { (self.seed, self.stream, self.coef) = (seed, stream, coef) }
}

/// Sparse MeZO's masked passes (zt_frontier.h ZT_MASK_*).
public enum MaskedOp: Int32, Sendable {
    case setPerturb = 0, perturb = 1, update = 2, replay = 3
}

/// The kernels of FZOO, Sparse MeZO and MeZO-SVRG (Kernels/cpu/frontier.c and its CUDA twin).
extension KernelBackend {
    /// The most terms one `streamSum` pass takes.
    public static var maxSumTerms: Int { Int(ZT_SUM_MAX_TERMS) }

    /// out = src + Σ_k coef_k·d_k over the tensor's stream, formed in f32 in term order and rounded
    /// once to out's dtype; source nil: in place. probeEps ≠ 0 (FZOO replay): each term's probe and
    /// undo are redone first, with the roundings of training's separate passes.
    public func streamSum(into out: Tensor, from source: Tensor? = nil, tensorId: UInt32, direction: SumDirection,
                          terms: [SumTerm], probeEps: Float = 0) {
        precondition(!terms.isEmpty && terms.count <= Self.maxSumTerms, "streamSum of \(terms.count) terms")
        if let source { precondition(source.count == out.count, "streamSum of \(source) into \(out)") }
        var a = zt_sum_args()
        a.dir = direction.rawValue
        a.count = Int32(terms.count)
        a.probe_eps = probeEps
        withUnsafeMutableBytes(of: &a.seed) { b in for (k, t) in terms.enumerated() { b.storeBytes(of: t.seed, toByteOffset: 8 * k, as: UInt64.self) } }
        withUnsafeMutableBytes(of: &a.stream) { b in for (k, t) in terms.enumerated() { b.storeBytes(of: t.stream, toByteOffset: 4 * k, as: UInt32.self) } }
        withUnsafeMutableBytes(of: &a.coef) { b in for (k, t) in terms.enumerated() { b.storeBytes(of: t.coef, toByteOffset: 4 * k, as: Float.self) } }
        api.stream_sum(out.pointer, out.dtype.code, source?.pointer, (source ?? out).dtype.code, Int64(out.count),
                       UInt64(out.streamIndex), tensorId, &a)
    }

    /// One of Sparse MeZO's masked passes over x (mask: one u8 per element of x).
    public func maskedStream(_ op: MaskedOp, _ x: Tensor, mask: Tensor?, seed: UInt64, tensorId: UInt32, stream: UInt32,
                             threshold: Float, a: Float = 0, a1: Float = 0, a2: Float = 0, restore: Float = 0, step: Float = 0) {
        if let mask { precondition(mask.dtype == .u8 && mask.count == x.count, "mask \(mask) for \(x)") }
        precondition(mask != nil || op == .replay, "the masked pass \(op) needs the step's mask")
        var args = zt_masked_args(threshold: threshold, a: a, a1: a1, a2: a2, restore: restore, step: step)
        api.masked_stream(op.rawValue, x.pointer, x.dtype.code, mask?.pointer.assumingMemoryBound(to: UInt8.self),
                          Int64(x.count), UInt64(x.streamIndex), seed, tensorId, stream, &args)
    }

    /// The k-th smallest |x| (k clamped to [1, count]): exact, so the same on every device. The
    /// selection runs on the host; a device tensor is copied there first.
    public func kthAbs(_ x: Tensor, k: Int) -> Float {
        if device == .cpu { return zt_kth_abs(x.pointer, x.dtype.code, Int64(x.count), Int64(k)) }
        var host = [UInt8](repeating: 0, count: x.bytes)
        return host.withUnsafeMutableBytes { b in
            copy(x, toHost: b)
            return zt_kth_abs(b.baseAddress, x.dtype.code, Int64(x.count), Int64(k))
        }
    }
}
