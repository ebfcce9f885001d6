import ZOTuneBackend

/// A bad checkpoint, config or tokenizer: names the file and the field so the user can act on it.
public struct ModelError: Error, CustomStringConvertible, Sendable {
    public let file: String
    public let field: String
    public let message: String

    public init(file: String, field: String, _ message: String) {
        self.file = file
        self.field = field
        self.message = message
    }

    public var description: String { "\(file): \(field): \(message)" }
}

/// How a tensor is stored in a checkpoint file (GGML type names for the quantized ones).
public enum StoredType: String, Sendable, Equatable, CaseIterable {
    case f32, f16, bf16
    case q8_0 = "Q8_0", q4_0 = "Q4_0", q4_1 = "Q4_1", q5_0 = "Q5_0", q5_1 = "Q5_1"
    case q4_K = "Q4_K", q5_K = "Q5_K", q6_K = "Q6_K"

    public var isQuantized: Bool { !(self == .f32 || self == .f16 || self == .bf16) }
}

/// One tensor of a checkpoint: its name in Hugging Face naming (GGUF names are mapped), its shape
/// in row-major order (outermost first, as PyTorch reports it) and its stored type.
public struct CheckpointTensor: Sendable, Equatable {
    public let name: String
    public let shape: [Int]
    public let type: StoredType
    /// The file that holds it (shards differ).
    public let file: String

    public init(name: String, shape: [Int], type: StoredType, file: String) {
        self.name = name
        self.shape = shape
        self.type = type
        self.file = file
    }

    public var count: Int { shape.reduce(1, *) }
}

/// Read access to a checkpoint's tensors (safetensors file or shards, GGUF).
public protocol CheckpointReader: AnyObject, Sendable {
    /// The path the user gave (file or directory).
    var path: String { get }
    /// Every tensor, by Hugging Face name.
    var tensors: [String: CheckpointTensor] { get }
    /// Decodes tensor `name` into `destination`, which holds exactly `count` elements of `dtype`
    /// (f32, f16 or bf16) in host memory, converting or dequantizing as needed. Throws a
    /// `ModelError` naming the file and tensor when it is missing or unreadable.
    func read(_ name: String, into destination: UnsafeMutableRawBufferPointer, as dtype: DType) throws
    /// The GGML block format tensor `name` can be kept in as stored (a quantized GGUF matrix whose
    /// rows need at most reordering to reach the Hugging Face layout), or nil.
    func storedBlockFormat(_ name: String) -> DType?
    /// Copies tensor `name`'s blocks, rows in Hugging Face order, into `destination` (exactly its
    /// bytes in `storedBlockFormat`).
    func readBlocks(_ name: String, into destination: UnsafeMutableRawBufferPointer) throws
}

public extension CheckpointReader {
    func storedBlockFormat(_ name: String) -> DType? { nil }
    func readBlocks(_ name: String, into destination: UnsafeMutableRawBufferPointer) throws {
        throw ModelError(file: path, field: name, "this checkpoint stores no quantized blocks")
    }
}
