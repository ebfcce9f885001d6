import Foundation
import ZOTuneModels

// Readers for the original task file formats (TSV, JSON Lines, JSON). Every problem becomes a
// ModelError with the file's path in `file` and "line N: ..." (or a JSON key path) in `field`.

/// Throws unless `url` is an existing regular file (not a directory).
func requireFile(_ url: URL) throws {
    var isDir: ObjCBool = false
    guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isDir), !isDir.boolValue else {
        throw ModelError(file: url.path, field: "file", "not found")
    }
}

/// Reads a whole file; a missing or unreadable file names its path.
func readFileBytes(_ url: URL) throws -> [UInt8] {
    try requireFile(url)
    do {
        return [UInt8](try Data(contentsOf: url))
    } catch {
        throw ModelError(file: url.path, field: "file", "cannot read: \(error.localizedDescription)")
    }
}

/// Splits bytes at "\n" into 1-based numbered lines, dropping a trailing "\r" (CRLF files) and a
/// UTF-8 byte-order mark on line 1. Blank lines are kept (callers skip them) so numbers stay true.
func splitLines(_ bytes: [UInt8]) -> [(number: Int, bytes: ArraySlice<UInt8>)] {
    var lines: [(Int, ArraySlice<UInt8>)] = []
    var start = 0
    if bytes.starts(with: [0xEF, 0xBB, 0xBF]) { start = 3 }
    var number = 1
    var i = start
    while i <= bytes.count {
        if i == bytes.count || bytes[i] == 0x0A {
            var end = i
            if end > start, bytes[end - 1] == 0x0D { end -= 1 }
            if i < bytes.count || start < bytes.count { lines.append((number, bytes[start..<end])) }
            number += 1
            start = i + 1
        }
        i += 1
    }
    return lines
}

func isBlank(_ line: ArraySlice<UInt8>) -> Bool {
    line.allSatisfy { $0 == 0x20 || $0 == 0x09 || $0 == 0x0D }
}

/// Text decoding that never fails: UTF-8 when the bytes are valid UTF-8, else Windows-1252 (the
/// usual encoding of older English corpora: curly quotes at 0x91-0x94), else ISO-8859-1, which
/// maps every byte (Windows-1252 leaves 0x81, 0x8D, 0x8F, 0x90, 0x9D undefined). Done per line,
/// so one stray byte does not change how the rest of a file reads.
func decodeText(_ bytes: ArraySlice<UInt8>) -> String {
    if bytes.allSatisfy({ $0 < 0x80 }) { return String(decoding: bytes, as: UTF8.self) }
    if let s = String(bytes: bytes, encoding: .utf8) { return s }
    if let s = String(data: Data(bytes), encoding: .windowsCP1252) { return s }
    return String(decoding: bytes.map { UInt16($0) }, as: UTF16.self)  // ISO-8859-1: byte = code point
}

/// Python's `str.strip(' ')`: spaces only (MeZO strips prompts this way, keeping newlines).
func stripSpaces(_ s: String) -> String {
    guard s.utf8.first == 0x20 || s.utf8.last == 0x20 else { return s }
    var scalars = Substring(s).unicodeScalars
    while scalars.first == " " { scalars.removeFirst() }
    while scalars.last == " " { scalars.removeLast() }
    return String(scalars)
}

/// Python's `str.rstrip(' ')`.
func rstripSpaces(_ s: String) -> String {
    guard s.utf8.last == 0x20 else { return s }
    var scalars = Substring(s).unicodeScalars
    while scalars.last == " " { scalars.removeLast() }
    return String(scalars)
}

/// Python's `str.isspace()` for one code point (Unicode White_Space plus the separators \x1c-\x1f).
func isPythonSpace(_ c: Unicode.Scalar) -> Bool {
    c.properties.isWhitespace || (0x1C...0x1F).contains(c.value)
}

/// Python's `str.strip()`: whitespace and newlines on both ends.
func stripWhitespace<S: StringProtocol>(_ s: S) -> String {
    var scalars = Substring(s).unicodeScalars
    guard let first = scalars.first, let last = scalars.last, isPythonSpace(first) || isPythonSpace(last) else { return String(s) }
    while let c = scalars.first, isPythonSpace(c) { scalars.removeFirst() }
    while let c = scalars.last, isPythonSpace(c) { scalars.removeLast() }
    return String(scalars)
}

/// Python's `str.rstrip()`.
func rstripWhitespace(_ s: String) -> String {
    var scalars = Substring(s).unicodeScalars
    while let c = scalars.last, isPythonSpace(c) { scalars.removeLast() }
    return String(scalars)
}

// MARK: - TSV

/// A tab-separated file with a header row (GLUE style: no quoting).
struct TSVTable {
    let path: String
    let columns: [String]
    let rows: [(line: Int, fields: [String])]

    /// Index of a required header column.
    func column(_ name: String) throws -> Int {
        guard let i = columns.firstIndex(of: name) else {
            throw ModelError(file: path, field: "line 1: header",
                             "missing column \"\(name)\" (header has: \(columns.joined(separator: ", ")))")
        }
        return i
    }
}

func readTSV(_ url: URL) throws -> TSVTable {
    let lines = splitLines(try readFileBytes(url)).filter { !isBlank($0.bytes) }
    guard let header = lines.first else {
        throw ModelError(file: url.path, field: "file", "empty file: no header and no examples")
    }
    let columns = decodeText(header.bytes).components(separatedBy: "\t").map { stripWhitespace($0) }
    var rows: [(Int, [String])] = []
    rows.reserveCapacity(lines.count)
    for line in lines.dropFirst() {
        let fields = line.bytes.split(separator: 0x09, omittingEmptySubsequences: false).map(decodeText)
        guard fields.count == columns.count else {
            throw ModelError(file: url.path, field: "line \(line.number)",
                             "expected \(columns.count) tab-separated columns (\(columns.joined(separator: ", "))), found \(fields.count)")
        }
        rows.append((line.number, fields))
    }
    guard !rows.isEmpty else { throw ModelError(file: url.path, field: "file", "empty file: header only, no examples") }
    return TSVTable(path: url.path, columns: columns, rows: rows)
}

// MARK: - JSON

/// The class JSONSerialization uses for true/false (so a JSON 1 is not taken for a Bool and back).
let jsonBoolType = ObjectIdentifier(type(of: NSNumber(value: true)))

/// JSON null. Checked by type: `x is NSNull` on a Swift dictionary or array bridges the whole
/// collection to Foundation first (slow on large documents).
func isNull(_ v: Any) -> Bool { ObjectIdentifier(type(of: v)) == ObjectIdentifier(NSNull.self) }

/// A JSON object read from a task file, with where it came from for error messages.
struct JSONObject {
    let dict: [String: Any]
    let file: String
    /// 1-based line (JSON Lines), nil inside a single-document JSON file.
    let line: Int?
    /// Key path of this object inside the line or document ("" at the top of a JSONL line).
    let path: String

    func keyPath(_ key: String) -> String { path.isEmpty ? key : "\(path).\(key)" }

    func error(_ key: String?, _ message: String) -> ModelError {
        let where_ = line.map { "line \($0)" }
        let keyPart = key.map { "key \"\(keyPath($0))\"" } ?? (path.isEmpty ? nil : "\"\(path)\"")
        return ModelError(file: file, field: [where_, keyPart].compactMap { $0 }.joined(separator: ": "), message)
    }

    func has(_ key: String) -> Bool { dict[key].map { !isNull($0) } ?? false }

    func value(_ key: String) throws -> Any {
        guard let v = dict[key], !isNull(v) else { throw error(key, "missing key") }
        return v
    }

    func string(_ key: String) throws -> String {
        guard let s = try value(key) as? String else { throw error(key, "expected a string") }
        return s
    }

    /// An integer (not a boolean, not fractional).
    func int(_ key: String) throws -> Int {
        let v = try value(key)
        guard let n = v as? NSNumber, ObjectIdentifier(type(of: n)) != jsonBoolType,
              let i = Int(exactly: n.doubleValue) else { throw error(key, "expected an integer, found \(describe(v))") }
        return i
    }

    /// true/false, or 0/1 (MultiRC stores its labels as integers).
    func bool(_ key: String) throws -> Bool {
        let v = try value(key)
        if let n = v as? NSNumber {
            if ObjectIdentifier(type(of: n)) == jsonBoolType { return n.boolValue }
            if n.doubleValue == 0 { return false }
            if n.doubleValue == 1 { return true }
        }
        throw error(key, "expected true/false (or 0/1), found \(describe(v))")
    }

    func object(_ key: String) throws -> JSONObject {
        guard let d = try value(key) as? [String: Any] else { throw error(key, "expected a JSON object") }
        return JSONObject(dict: d, file: file, line: line, path: keyPath(key))
    }

    func array(_ key: String) throws -> [Any] {
        guard let a = try value(key) as? [Any] else { throw error(key, "expected a JSON array") }
        return a
    }

    func objects(_ key: String) throws -> [JSONObject] {
        try array(key).enumerated().map { i, v in
            guard let d = v as? [String: Any] else { throw error("\(key)[\(i)]", "expected a JSON object") }
            return JSONObject(dict: d, file: file, line: line, path: keyPath("\(key)[\(i)]"))
        }
    }

    func strings(_ key: String) throws -> [String] {
        try array(key).enumerated().map { i, v in
            guard let s = v as? String else { throw error("\(key)[\(i)]", "expected a string") }
            return s
        }
    }
}

func describe(_ v: Any) -> String {
    if v is [Any] { return "an array" }
    if v is [String: Any] { return "an object" }
    if isNull(v) { return "null" }
    if let s = v as? String { return "\"\(s)\"" }
    if let n = v as? NSNumber {
        return ObjectIdentifier(type(of: n)) == jsonBoolType ? (n.boolValue ? "true" : "false") : "\(n)"
    }
    return "\(v)"
}

/// Parses a JSON Lines file: one object per non-blank line.
func readJSONLines(_ url: URL) throws -> [JSONObject] {
    var objects: [JSONObject] = []
    for line in splitLines(try readFileBytes(url)) where !isBlank(line.bytes) {
        let parsed: Any
        do {
            parsed = try JSONSerialization.jsonObject(with: Data(line.bytes), options: [])
        } catch {
            throw ModelError(file: url.path, field: "line \(line.number)", "malformed JSON: \(jsonErrorText(error))")
        }
        guard let d = parsed as? [String: Any] else {
            throw ModelError(file: url.path, field: "line \(line.number)", "expected a JSON object, found \(describe(parsed))")
        }
        objects.append(JSONObject(dict: d, file: url.path, line: line.number, path: ""))
    }
    guard !objects.isEmpty else { throw ModelError(file: url.path, field: "file", "empty file: no examples") }
    return objects
}

/// Parses a single JSON document whose top level is an object (SQuAD, DROP). A syntax error is
/// located by line and column when JSONSerialization reports a character offset.
func readJSONDocument(_ url: URL) throws -> JSONObject {
    let bytes = try readFileBytes(url)
    guard bytes.contains(where: { !($0 == 0x20 || $0 == 0x0A || $0 == 0x0D || $0 == 0x09) }) else {
        throw ModelError(file: url.path, field: "file", "empty file: no examples")
    }
    let parsed: Any
    do {
        parsed = try JSONSerialization.jsonObject(with: Data(bytes), options: [])
    } catch {
        var field = "file"
        let text = jsonErrorText(error)
        if let r = text.range(of: #"line \d+, column \d+"#, options: .regularExpression) {
            field = text[r].replacingOccurrences(of: ",", with: ":")  // Darwin reports line and column
        } else if let r = text.range(of: #"character (\d+)"#, options: .regularExpression),
           let offset = Int(text[r].dropFirst("character ".count)) {
            // The offset counts characters; for ASCII-heavy JSON it is close to the byte offset.
            let upTo = bytes.prefix(min(offset, bytes.count))
            let line = upTo.reduce(1) { $0 + ($1 == 0x0A ? 1 : 0) }
            let column = offset - (upTo.lastIndex(of: 0x0A).map { $0 + 1 } ?? 0) + 1
            field = "line \(line): column \(column)"
        }
        throw ModelError(file: url.path, field: field, "malformed JSON: \(text)")
    }
    guard let d = parsed as? [String: Any] else {
        throw ModelError(file: url.path, field: "file", "expected a JSON object at the top level, found \(describe(parsed))")
    }
    return JSONObject(dict: d, file: url.path, line: nil, path: "")
}

private func jsonErrorText(_ error: Error) -> String {
    let ns = error as NSError
    return (ns.userInfo[NSDebugDescriptionErrorKey] as? String) ?? ns.localizedDescription
}
