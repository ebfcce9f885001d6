import ZOTuneKernels

/// Element type of a device buffer. f32/f16/bf16 hold numbers (math is always f32; f16/bf16 are
/// storage formats); i32 holds token ids and positions, u8 attention masks. The GGML block
/// formats (q4_0 … q6_k) hold a frozen base as loaded from GGUF: blocks of 32 or 256 elements,
/// dequantized into f32 before use (dequantize_rows).
public enum DType: String, Sendable, CaseIterable, CustomStringConvertible {
    case f32, f16, bf16, i32, u8
    case q4_0, q4_1, q5_0, q5_1, q8_0, q4_k, q5_k, q6_k

    /// Bytes per element (not for block formats: see `byteCount`).
    public var size: Int {
        switch self {
        case .f32, .i32: return 4
        case .f16, .bf16: return 2
        case .u8: return 1
        default: preconditionFailure("\(self) stores blocks, not elements")
        }
    }

    public var isFloat: Bool { self == .f32 || self == .f16 || self == .bf16 }
    public var isQuantized: Bool { ggmlType != nil }
    public var description: String { rawValue }

    /// GGML's type id of a block format (ZT_GGML_*).
    public var ggmlType: Int32? {
        switch self {
        case .q4_0: return Int32(ZT_GGML_Q4_0)
        case .q4_1: return Int32(ZT_GGML_Q4_1)
        case .q5_0: return Int32(ZT_GGML_Q5_0)
        case .q5_1: return Int32(ZT_GGML_Q5_1)
        case .q8_0: return Int32(ZT_GGML_Q8_0)
        case .q4_k: return Int32(ZT_GGML_Q4_K)
        case .q5_k: return Int32(ZT_GGML_Q5_K)
        case .q6_k: return Int32(ZT_GGML_Q6_K)
        default: return nil
        }
    }

    /// The block format of a GGML type id, nil for any other type.
    public init?(ggmlType: Int) {
        guard let d = DType.allCases.first(where: { $0.ggmlType == Int32(ggmlType) }) else { return nil }
        self = d
    }

    /// x rounded to the nearest value of this 16-bit float type (ties to even), as an f32; x itself
    /// for any other type. For constants a model casts to its weights' dtype (Gemma's √hidden).
    public func rounded(_ x: Float) -> Float {
        switch self {
        case .f16: return Float(Float16(x))
        case .bf16:
            guard x.isFinite else { return x }
            let b = x.bitPattern
            return Float(bitPattern: ((b &+ 0x7FFF &+ ((b >> 16) & 1)) >> 16) << 16)
        default: return x
        }
    }

    /// Elements per block (1 for element types).
    public var blockElements: Int { ggmlType.map { Int(zt_quant_block_elems($0)) } ?? 1 }

    /// Bytes of `count` elements (a whole number of blocks for block formats).
    public func byteCount(_ count: Int) -> Int {
        guard let t = ggmlType else { return count * size }
        let e = Int(zt_quant_block_elems(t))
        precondition(count % e == 0, "\(count) elements are not whole \(self) blocks of \(e)")
        return count / e * Int(zt_quant_block_bytes(t))
    }

    /// The kernels' storage dtype code (floating types only).
    public var code: zt_dtype {
        switch self {
        case .f32: return zt_dtype(ZT_F32)
        case .f16: return zt_dtype(ZT_F16)
        case .bf16: return zt_dtype(ZT_BF16)
        default: preconditionFailure("\(self) is not a floating storage dtype")
        }
    }
}
