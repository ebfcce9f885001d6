import Foundation
import XCTest
import ZOTuneModels

/// What the PyTorch reference tests share (OptimizerReferenceTests, FrontierReferenceTests): the
/// scripts' JSON (snake_case keys), their token batch, and the f32 tensors of their safetensors.
enum ReferenceFixture {
    /// A reference's token batch: B × T ids, no padding.
    struct Batch: Decodable {
        let batch: Int
        let length: Int
        let ids: [Int32]

        /// `ids` (default: the batch's own) in this shape, every position unmasked.
        func tokens(_ ids: [Int32]? = nil) -> TokenBatch {
            let ids = ids ?? self.ids
            return TokenBatch(ids: ids, mask: [UInt8](repeating: 1, count: ids.count), batch: batch, length: length)
        }
    }

    static func decode<T: Decodable>(_ type: T.Type, _ url: URL) throws -> T {
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        return try decoder.decode(type, from: Data(contentsOf: url))
    }

    /// Tensor `name` of `file`, which must be f32.
    static func floats(_ file: SafetensorsFile, _ name: String) throws -> [Float] {
        let entry = try XCTUnwrap(file.entries[name], "\(name) missing from \(file.path)")
        XCTAssertEqual(entry.dtype, "F32")
        var out = [Float](repeating: 0, count: entry.count)
        try out.withUnsafeMutableBytes { try file.read(name, into: $0, as: .f32) }
        return out
    }
}
