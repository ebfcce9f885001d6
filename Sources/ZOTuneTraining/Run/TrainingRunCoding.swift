import Foundation
import ZOTuneModels

/// A run file (`--config run.json`, and the config.json every run writes) is one JSON object keyed
/// by the command-line options without their `--` ("batch-size": 16). "optimizer", "peft" and
/// "blocks" are objects as the run header stores them ({"name": "zo-adam", "beta1": 0.9}); a file
/// may give only some of their fields (the rest take the defaults), or just the name as a string.
/// A key this build does not know, a value of the wrong type and a nested field that does not
/// exist are refused, naming the key.
extension CodingUserInfoKey {
    /// [String: String]: values for a run file's required keys that the file leaves out.
    static let runFileFallbacks = CodingUserInfoKey(rawValue: "zotune.run-file-fallbacks")!
}

extension TrainingRun: Codable {
    public static let keys = ["model", "dtype", "precision", "sliding-window", "task", "data-dir", "task-file", "train-file", "dev-file", "test-file",
                              "template", "labels", "data-seed", "train-count", "dev-count", "test-count", "peft", "blocks", "optimizer",
                              "lr", "batch-size", "steps", "schedule", "warmup", "objective", "max-length", "eval-every", "eval-count",
                              "seed", "save-every", "keep-last", "distributed", "check-replicas-every", "out"]

    struct Key: CodingKey {
        let stringValue: String
        init(_ s: String) { stringValue = s }
        init?(stringValue: String) { self.stringValue = stringValue }
        var intValue: Int? { nil }
        init?(intValue: Int) { nil }
    }

    public init(from decoder: Decoder) throws {
        let r = try RunFileReader(decoder, keys: Self.keys, file: "a run file", command: "zotune train")
        func get<T: Decodable>(_ key: String, _ type: T.Type = T.self) throws -> T? { try r.get(key, type) }
        func u64(_ key: String) throws -> UInt64? { try r.u64(key) }
        // A file may leave the model and the task to the command line (`train --config hp.json --model M --task T`).
        // With no command line behind the file (sweep's base run) the message names no flag.
        let typed = decoder.userInfo[.runFileFallbacks] as? [String: String]
        func missing(_ key: String, _ what: String) -> RunConfigError {
            RunConfigError("\"\(key)\": missing (\(what)" + (typed == nil ? ")" : ": give it in the file or with --\(key))"))
        }
        guard let model = try get("model", String.self) ?? typed?["model"] else { throw missing("model", "the checkpoint to train") }
        guard let task = try get("task", String.self) ?? typed?["task"] else { throw missing("task", "a task name, or custom") }
        self.init(model: model, task: task)
        dtype = try get("dtype") ?? dtype
        precision = try get("precision") ?? precision
        slidingWindow = try get("sliding-window")
        dataDir = try get("data-dir")
        taskFile = try get("task-file")
        trainFile = try get("train-file")
        devFile = try get("dev-file")
        testFile = try get("test-file")
        template = try get("template")
        labels = try get("labels")
        dataSeed = try u64("data-seed") ?? dataSeed
        trainCount = try get("train-count") ?? trainCount
        devCount = try get("dev-count") ?? devCount
        testCount = try get("test-count") ?? testCount
        lr = try get("lr")
        batchSize = try get("batch-size") ?? batchSize
        steps = try get("steps") ?? steps
        schedule = try get("schedule") ?? schedule
        warmup = try get("warmup") ?? warmup
        objective = try get("objective") ?? objective
        maxLength = try get("max-length") ?? maxLength
        evalEvery = try get("eval-every") ?? evalEvery
        evalCount = try get("eval-count")
        seed = try u64("seed") ?? seed
        saveEvery = try get("save-every") ?? saveEvery
        keepLast = try get("keep-last") ?? keepLast
        distributed = try get("distributed") ?? distributed
        checkReplicasEvery = try get("check-replicas-every") ?? checkReplicasEvery
        out = try get("out")
        // A nested object (or just its name) over the defaults its name picks; absent, null or
        // "none": nil.
        func nested<T: Codable>(_ key: String, field: String = "name", known: [String], defaults: (String) -> T?) throws -> T? {
            guard let v = try get(key, JSONValue.self), v != .null else { return nil }
            let name = try Self.name(of: v, key: key, field: field, known: known)
            return try defaults(name).map { try Self.overlay(v, on: $0, key: key, field: field) }
        }
        peft = try nested("peft", known: PEFTConfig.names + ["none"]) { name -> PEFTConfig? in
            switch name {
            case "lora": .lora(LoRAOptions())
            case "prefix": .prefix(PrefixOptions(tokens: 5))
            case "prompt": .prompt(PromptOptions(tokens: 10))
            default: nil
            }
        }
        blocks = try nested("blocks", field: "level", known: BlockLevel.allCases.map(\.rawValue) + ["none"]) {
            BlockLevel(rawValue: $0).map { BlockwiseOptions(level: $0) }
        }
        // The optimizer's defaults depend on the adapter.
        optimizer = try nested("optimizer", known: OptimizerKind.allCases.map(\.rawValue)) { [peft] in
            Self.defaultOptimizer(OptimizerKind(rawValue: $0)!, peft: peft)
        }
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: Key.self)
        func put<T: Encodable>(_ key: String, _ value: T?) throws { try c.encodeIfPresent(value, forKey: Key(key)) }
        try put("model", model); try put("dtype", dtype); try put("precision", precision); try put("sliding-window", slidingWindow)
        try put("task", task); try put("data-dir", dataDir); try put("task-file", taskFile); try put("train-file", trainFile)
        try put("dev-file", devFile); try put("test-file", testFile); try put("template", template); try put("labels", labels)
        try put("data-seed", String(dataSeed)); try put("train-count", trainCount); try put("dev-count", devCount); try put("test-count", testCount)
        try put("peft", peft); try put("blocks", blocks); try put("optimizer", optimizer)
        try put("lr", lr); try put("batch-size", batchSize); try put("steps", steps); try put("schedule", schedule); try put("warmup", warmup)
        try put("objective", objective); try put("max-length", maxLength); try put("eval-every", evalEvery); try put("eval-count", evalCount)
        try put("seed", String(seed)); try put("save-every", saveEvery); try put("keep-last", keepLast)
        try put("distributed", distributed); try put("check-replicas-every", checkReplicasEvery); try put("out", out)
    }

    /// The run in a file (`--config`); an error names the file and the key. `fallbacks`: values of
    /// the required keys ("model", "task") that the command line gives, used where the file has none
    /// (nil: no command line can give them, as for a sweep's base run).
    public static func load(_ url: URL, fallbacks: [String: String]? = nil) throws -> TrainingRun {
        let data: Data
        do { data = try Data(contentsOf: url) } catch { throw FileError(path: url.path, cause: FileError.cause(of: error) ?? "cannot be read") }
        return try decode(data, source: url.path, fallbacks: fallbacks)
    }

    public static func decode(_ data: Data, source: String = "run file", fallbacks: [String: String]? = nil) throws -> TrainingRun {
        let decoder = JSONDecoder()
        decoder.userInfo[.runFileFallbacks] = fallbacks
        do { return try decoder.decode(TrainingRun.self, from: data) } catch let e as RunConfigError {
            throw RunConfigError("\(source): \(e.description)")
        } catch let e as DecodingError {
            throw RunConfigError("\(source): \(reason(e, expected: TrainingRun.self))")
        }
    }

    /// The JSON every run writes as config.json: sorted keys, one per line.
    public func json() throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return try encoder.encode(self) + Data("\n".utf8)
    }

    /// Writes the run's JSON to `url` through a temporary file and a rename.
    public func write(to url: URL) throws { try AtomicFile.write(try json(), to: url) }

    // MARK: helpers

    static func reason(_ e: DecodingError, expected: Any.Type) -> String {
        func path(_ p: [CodingKey]) -> String { p.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }.joined(separator: ".") }
        switch e {
        case .typeMismatch(let t, let ctx): return (ctx.codingPath.isEmpty ? "" : path(ctx.codingPath) + ": ") + "expected \(typeName(t))"
        case .valueNotFound(let t, let ctx): return (ctx.codingPath.isEmpty ? "" : path(ctx.codingPath) + ": ") + "expected \(typeName(t)), found null"
        case .keyNotFound(let k, let ctx): return path(ctx.codingPath + [k]) + ": missing"
        case .dataCorrupted(let ctx):
            if ctx.codingPath.isEmpty { return "not valid JSON (\(ctx.underlyingError.map { "\(($0 as NSError).userInfo["NSDebugDescription"] ?? $0)" } ?? ctx.debugDescription))" }
            return path(ctx.codingPath) + ": " + ctx.debugDescription
        @unknown default: return "\(e)"
        }
    }

    static func typeName(_ t: Any.Type) -> String {
        switch t {
        case is String.Type: return "a string"
        case is Bool.Type: return "true or false"
        case is Int.Type, is UInt64.Type, is Int64.Type: return "an integer"
        case is Float.Type, is Double.Type: return "a number"
        case is [String].Type: return "a list of strings"
        default: return t is Decodable.Type && "\(t)".hasPrefix("Dictionary") ? "an object" : "a value of type \(t)"
        }
    }

    /// `value`'s name: the string itself, or its object's `field` (a string this build knows).
    static func name(of value: JSONValue, key: String, field: String = "name", known: [String]) throws -> String {
        let name: String
        switch value {
        case .string(let s): name = s
        case .object(let o):
            guard case .string(let s)? = o[field] else { throw RunConfigError("\"\(key)\": needs \"\(field)\" (\(known.joined(separator: ", ")))") }
            name = s
        default: throw RunConfigError("\"\(key)\": expected an object or a name (\(known.joined(separator: ", ")))")
        }
        guard known.contains(name) else { throw RunConfigError("\"\(key)\": unknown \(field) \"\(name)\" (this build knows \(known.joined(separator: ", ")))") }
        return name
    }

    /// `given`'s fields over `defaults` (both as JSON); a field that `defaults` does not have is refused.
    static func overlay<T: Codable>(_ given: JSONValue, on defaults: T, key: String, field: String = "name") throws -> T {
        guard case .object(var fields) = try JSONDecoder().decode(JSONValue.self, from: try JSONEncoder().encode(defaults)) else { return defaults }
        let known = fields.keys.sorted()
        if case .object(let o) = given {
            // Optional fields (the block re-init, a Zoop block list) are absent from the defaults' JSON.
            let optional: Set<String> = ["reinit", "blocks"]
            for (k, v) in o.sorted(by: { $0.key < $1.key }) where k != field {
                guard fields[k] != nil || optional.contains(k) else {
                    throw RunConfigError("\"\(key)\": unknown field \"\(k)\" (it takes \(known.filter { $0 != field }.joined(separator: ", ")))")
                }
                fields[k] = v
            }
        }
        do { return try JSONDecoder().decode(T.self, from: try JSONEncoder().encode(JSONValue.object(fields))) } catch let e as DecodingError {
            throw RunConfigError("\"\(key)\".\(reason(e, expected: T.self))")
        }
    }
}

/// Any JSON value, keeping integers exact (64-bit seeds).
enum JSONValue: Codable, Equatable {
    case null, bool(Bool), int(Int64), uint(UInt64), double(Double), string(String), array([JSONValue]), object([String: JSONValue])

    init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        if c.decodeNil() { self = .null }
        else if let b = try? c.decode(Bool.self) { self = .bool(b) }
        else if let i = try? c.decode(Int64.self) { self = .int(i) }
        else if let u = try? c.decode(UInt64.self) { self = .uint(u) }
        else if let d = try? c.decode(Double.self) { self = .double(d) }
        else if let s = try? c.decode(String.self) { self = .string(s) }
        else if let a = try? c.decode([JSONValue].self) { self = .array(a) }
        else { self = .object(try c.decode([String: JSONValue].self)) }
    }

    func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        switch self {
        case .null: try c.encodeNil()
        case .bool(let b): try c.encode(b)
        case .int(let i): try c.encode(i)
        case .uint(let u): try c.encode(u)
        case .double(let d): try c.encode(d)
        case .string(let s): try c.encode(s)
        case .array(let a): try c.encode(a)
        case .object(let o): try c.encode(o)
        }
    }
}

/// Reads a run file's keys (train's and pretrain's): an unknown key is refused listing the keys the
/// command takes; a bad value names its key and the type expected.
struct RunFileReader {
    let c: KeyedDecodingContainer<TrainingRun.Key>

    init(_ decoder: Decoder, keys: [String], file: String, command: String) throws {
        c = try decoder.container(keyedBy: TrainingRun.Key.self)
        let unknown = c.allKeys.map(\.stringValue).filter { !keys.contains($0) }.sorted()
        if !unknown.isEmpty {
            throw RunConfigError("unknown key\(unknown.count > 1 ? "s" : "") \(unknown.map { "\"\($0)\"" }.joined(separator: ", ")) " +
                                 "(\(file) takes the options of `\(command)` without their --: \(keys.joined(separator: ", ")))")
        }
    }

    func get<T: Decodable>(_ key: String, _ type: T.Type = T.self) throws -> T? {
        do { return try c.decodeIfPresent(T.self, forKey: TrainingRun.Key(key)) } catch is DecodingError {
            throw RunConfigError("\"\(key)\": expected \(TrainingRun.typeName(T.self))")
        }
    }

    /// Seeds are 64-bit: a number, or a decimal string (which no JSON reader rounds through a double).
    func u64(_ key: String) throws -> UInt64? {
        switch try get(key, JSONValue.self) {
        case nil, .null?: return nil
        case .int(let i)? where i >= 0: return UInt64(i)
        case .uint(let u)?: return u
        case .string(let s)? where UInt64(s) != nil: return UInt64(s)
        default: throw RunConfigError("\"\(key)\": expected an unsigned 64-bit integer (a number, or its decimal digits as a string)")
        }
    }
}
