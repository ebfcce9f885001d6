import Foundation
import ZOTuneBackend

/// A Hugging Face checkpoint directory: config.json, the weights as `model.safetensors` or as shards
/// listed by `model.safetensors.index.json`, and tokenizer.json when present. Also opens a path to a
/// single `.safetensors` file (or to an index) whose directory holds config.json.
public final class HFCheckpoint: CheckpointReader {
    public let path: String
    /// The directory holding config.json.
    public let directory: URL
    public let config: ModelConfig
    /// tokenizer.json next to the weights, if any.
    public let tokenizerURL: URL?
    /// The safetensors files, in shard-name order.
    public let files: [SafetensorsFile]
    public let tensors: [String: CheckpointTensor]
    /// Which file holds each tensor (decodable or not).
    private let owner: [String: SafetensorsFile]

    public static let indexName = "model.safetensors.index.json"
    public static let singleName = "model.safetensors"

    public convenience init(url: URL) throws {
        try self.init(path: url.path)
    }

    public init(path: String) throws {
        self.path = path
        let fm = FileManager.default
        var isDir: ObjCBool = false
        guard fm.fileExists(atPath: path, isDirectory: &isDir) else {
            throw ModelError(file: path, field: "path", "no such file or directory")
        }
        let url = URL(fileURLWithPath: path)
        let directory = isDir.boolValue ? url : url.deletingLastPathComponent()
        self.directory = directory

        // Which weights: an explicit file, else the index, else the single file.
        let weights: URL
        if !isDir.boolValue {
            weights = url
        } else if fm.fileExists(atPath: directory.appendingPathComponent(Self.indexName).path) {
            weights = directory.appendingPathComponent(Self.indexName)
        } else if fm.fileExists(atPath: directory.appendingPathComponent(Self.singleName).path) {
            weights = directory.appendingPathComponent(Self.singleName)
        } else {
            throw ModelError(file: path, field: Self.singleName,
                             "directory has neither \(Self.singleName) nor \(Self.indexName)")
        }

        let configURL = directory.appendingPathComponent("config.json")
        guard fm.fileExists(atPath: configURL.path) else {
            throw ModelError(file: configURL.path, field: "config.json", "missing next to the weights")
        }
        self.config = try ModelConfig.fromHuggingFace(configJSON: configURL)
        let tokenizer = directory.appendingPathComponent("tokenizer.json")
        self.tokenizerURL = fm.fileExists(atPath: tokenizer.path) ? tokenizer : nil

        if weights.lastPathComponent.hasSuffix(".index.json") {
            (files, owner) = try Self.openShards(index: weights)
        } else {
            let file = try SafetensorsFile(url: weights)
            files = [file]
            owner = file.entries.mapValues { _ in file }
        }
        var tensors: [String: CheckpointTensor] = [:]
        for (name, file) in owner {
            if let t = file.tensors[name] { tensors[name] = t }
        }
        self.tensors = tensors
    }

    /// Tensors listed in the checkpoint whose dtype ZOTune cannot decode, with that dtype.
    public var unsupportedTensors: [String: String] {
        var result: [String: String] = [:]
        for (name, file) in owner where file.tensors[name] == nil {
            result[name] = file.entries[name]?.dtype
        }
        return result
    }

    public func read(_ name: String, into destination: UnsafeMutableRawBufferPointer, as dtype: DType) throws {
        guard let file = owner[name] else {
            throw ModelError(file: path, field: "tensor \(name)", "not in this checkpoint")
        }
        try file.read(name, into: destination, as: dtype)
    }

    /// Opens every shard named by the index's weight_map and checks that each holds its tensors.
    private static func openShards(index: URL) throws -> ([SafetensorsFile], [String: SafetensorsFile]) {
        let file = index.path
        let object: Any
        do {
            object = try JSONSerialization.jsonObject(with: Data(contentsOf: index))
        } catch {
            throw ModelError(file: file, field: "index", "unreadable or malformed JSON: \(error.localizedDescription)")
        }
        guard let dict = object as? [String: Any], let map = dict["weight_map"] as? [String: Any] else {
            throw ModelError(file: file, field: "weight_map", "missing or not an object")
        }
        guard !map.isEmpty else {
            throw ModelError(file: file, field: "weight_map", "lists no tensors")
        }
        var shardOf: [String: String] = [:]
        for (name, value) in map {
            guard let shard = value as? String else {
                throw ModelError(file: file, field: "weight_map: \(name)", "shard name is not a string")
            }
            // Shards live beside the index; a path would let an index read files anywhere.
            guard !shard.isEmpty, !shard.contains("/"), shard != ".", shard != ".." else {
                throw ModelError(file: file, field: "weight_map: \(name)", "shard \"\(shard)\" is not a file name")
            }
            shardOf[name] = shard
        }
        let dir = index.deletingLastPathComponent()
        var opened: [String: SafetensorsFile] = [:]
        for shard in Set(shardOf.values).sorted() {
            let url = dir.appendingPathComponent(shard)
            guard FileManager.default.fileExists(atPath: url.path) else {
                throw ModelError(file: file, field: "weight_map: \(shard)", "shard file \(url.path) does not exist")
            }
            opened[shard] = try SafetensorsFile(url: url)
        }
        var owner: [String: SafetensorsFile] = [:]
        for (name, shard) in shardOf {
            let f = opened[shard]!
            guard f.entries[name] != nil else {
                throw ModelError(file: file, field: "weight_map: \(name)", "shard \(shard) does not hold this tensor")
            }
            owner[name] = f
        }
        return (opened.keys.sorted().map { opened[$0]! }, owner)
    }
}
