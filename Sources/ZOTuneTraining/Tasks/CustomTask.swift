import Foundation
import ZOTuneModels

// A user's own task: records in JSON Lines, CSV or TSV, turned into the same TaskExample the
// built-in tasks produce, by the same rules (MeZO's prompt/option split, MeZO's split draw).
//
//   classification   `label` + the template's fields; a label → verbalizer map gives the options
//   multiple choice  `prompt` (or the template's fields) + `choices` + `answer`
//   generation       `prompt` (or the template's fields) + `completion`
//
// Every problem is a ModelError naming the file, the line and the field.

/// The three shapes of custom records.
public enum CustomShape: String, Sendable, CaseIterable {
    case classification
    case multipleChoice = "multiple-choice"
    case generation

    var defaultTemplate: String { self == .classification ? "{text}" : "{prompt}" }
}

/// One option of a classification task: the label as it appears in the data, and the text the
/// model is scored on after the prompt (MeZO's verbalizer, e.g. " great").
public struct LabelVerbalizer: Sendable, Equatable {
    public let label: String
    public let verbalizer: String

    public init(label: String, verbalizer: String) {
        self.label = label
        self.verbalizer = verbalizer
    }

    /// `0= terrible,1= great`: comma-separated `label=verbalizer` pairs; the verbalizer keeps its
    /// spaces (MeZO's options start with one). A JSON task file can give pairs for labels or
    /// verbalizers that hold a comma.
    public static func parseList(_ text: String, source: String) throws -> [LabelVerbalizer] {
        var out: [LabelVerbalizer] = []
        for item in text.split(separator: ",", omittingEmptySubsequences: false) {
            guard let eq = item.firstIndex(of: "=") else {
                throw ModelError(file: source, field: "labels", "expected label=verbalizer pairs separated by commas (e.g. '0= terrible,1= great'), found \"\(item)\"")
            }
            let label = stripWhitespace(item[..<eq]), verbalizer = String(item[item.index(after: eq)...])
            guard !label.isEmpty, !stripWhitespace(verbalizer).isEmpty else {
                throw ModelError(file: source, field: "labels", "empty label or verbalizer in \"\(item)\"")
            }
            out.append(LabelVerbalizer(label: label, verbalizer: verbalizer))
        }
        try check(out, source: source)
        return out
    }

    static func check(_ labels: [LabelVerbalizer], source: String) throws {
        guard labels.count >= 2 else { throw ModelError(file: source, field: "labels", "a classification task needs at least two labels") }
        var seen = Set<String>()
        for l in labels where !seen.insert(l.label).inserted {
            throw ModelError(file: source, field: "labels", "label \"\(l.label)\" appears twice")
        }
    }
}

/// A prompt template: literal text with `{field}` placeholders (`{{` and `}}` are literal braces).
public struct PromptTemplate: Sendable, Equatable {
    enum Part: Sendable, Equatable { case text(String), field(String) }
    let parts: [Part]
    public let source: String

    public init(_ template: String, source: String = "--template") throws {
        self.source = source
        var parts: [Part] = [], literal = "", i = template.startIndex
        while i < template.endIndex {
            let c = template[i], next = template.index(after: i)
            if (c == "{" || c == "}"), next < template.endIndex, template[next] == c {
                literal.append(c); i = template.index(after: next); continue
            }
            if c == "}" { throw ModelError(file: source, field: "template", "unmatched \"}\" in \"\(template)\" (write }} for a literal brace)") }
            if c == "{" {
                guard let close = template[next...].firstIndex(of: "}") else {
                    throw ModelError(file: source, field: "template", "unclosed \"{\" in \"\(template)\" (write {{ for a literal brace)")
                }
                let name = String(template[next..<close])
                guard !name.isEmpty, !name.contains("{") else {
                    throw ModelError(file: source, field: "template", "bad placeholder \"{\(name)}\" in \"\(template)\"")
                }
                if !literal.isEmpty { parts.append(.text(literal)); literal = "" }
                parts.append(.field(name))
                i = template.index(after: close); continue
            }
            literal.append(c); i = next
        }
        if !literal.isEmpty { parts.append(.text(literal)) }
        guard parts.contains(where: { if case .field = $0 { return true } else { return false } }) else {
            throw ModelError(file: source, field: "template", "\"\(template)\" has no {field} placeholder")
        }
        self.parts = parts
    }

    /// The fields the template reads.
    public var fields: [String] { parts.compactMap { if case .field(let f) = $0 { return f } else { return nil } } }

    /// The prompt for one record; each value is stripped of surrounding whitespace first (as MeZO's
    /// SST-2 template strips its sentence).
    func render(_ record: CustomRecord) throws -> String {
        try parts.map { part in
            switch part {
            case .text(let t): return t
            case .field(let f): return stripWhitespace(try record.text(f))
            }
        }.joined()
    }
}

/// What a custom task is: its shape, how a record becomes a prompt, and where the files are.
public struct CustomTaskSpec: Sendable {
    /// Names the task in notes and in the seed streams of the draw ("<name>/train", ...).
    public var name = "custom"
    /// nil: classification when `labels` are given, else from the first record's fields.
    public var shape: CustomShape?
    public var template: PromptTemplate?
    public var labels: [LabelVerbalizer]?
    /// One file: train, dev and test are drawn from it, disjoint.
    public var file: URL?
    /// Separate files: train from `train`; dev and test from `test` (or `dev`), disjoint; dev from
    /// `dev` and test from `test` when both are given.
    public var train: URL?
    public var dev: URL?
    public var test: URL?

    public init() {}

    /// A JSON task file: {"name", "shape", "template", "labels", "file" | "train"/"dev"/"test"}.
    /// `labels` is "0= terrible,1= great" or [["0", " terrible"], ["1", " great"]]; file paths are
    /// relative to the task file's directory.
    public static func load(_ url: URL) throws -> CustomTaskSpec {
        let o = try readJSONDocument(url)
        let known: Set<String> = ["name", "shape", "template", "labels", "file", "train", "dev", "test"]
        if let extra = o.dict.keys.sorted().first(where: { !known.contains($0) }) {
            throw o.error(extra, "unknown key (known: \(known.sorted().joined(separator: ", ")))")
        }
        var spec = CustomTaskSpec()
        if o.has("name") { spec.name = try o.string("name") }
        if o.has("shape") {
            let s = try o.string("shape")
            guard let shape = CustomShape(rawValue: s) else {
                throw o.error("shape", "expected one of \(CustomShape.allCases.map { "\"\($0.rawValue)\"" }.joined(separator: ", ")), found \"\(s)\"")
            }
            spec.shape = shape
        }
        if o.has("template") { spec.template = try PromptTemplate(try o.string("template"), source: url.path) }
        if o.has("labels") {
            let v = try o.value("labels")
            if let s = v as? String {
                spec.labels = try LabelVerbalizer.parseList(s, source: url.path)
            } else if let pairs = v as? [Any] {
                spec.labels = try pairs.enumerated().map { i, p in
                    guard let pair = p as? [Any], pair.count == 2, let verbalizer = pair[1] as? String,
                          let label = jsonScalarText(pair[0]) else {
                        throw o.error("labels[\(i)]", "expected [label, verbalizer], found \(describe(p))")
                    }
                    return LabelVerbalizer(label: label, verbalizer: verbalizer)
                }
                try LabelVerbalizer.check(spec.labels!, source: url.path)
            } else {
                throw o.error("labels", "expected \"label=verbalizer,...\" or an array of [label, verbalizer] pairs, found \(describe(v))")
            }
        }
        let dir = url.deletingLastPathComponent()
        func path(_ key: String) throws -> URL? {
            guard o.has(key) else { return nil }
            let p = try o.string(key)
            return p.hasPrefix("/") ? URL(fileURLWithPath: p) : dir.appendingPathComponent(p)
        }
        (spec.file, spec.train, spec.dev, spec.test) = (try path("file"), try path("train"), try path("dev"), try path("test"))
        return spec
    }
}

/// The text of a JSON scalar as a label: strings as they are, integers in decimal, true/false.
func jsonScalarText(_ v: Any) -> String? {
    if let s = v as? String { return s }
    if let n = v as? NSNumber {
        if ObjectIdentifier(type(of: n)) == jsonBoolType { return n.boolValue ? "true" : "false" }
        if let i = Int(exactly: n.doubleValue) { return String(i) }
        return "\(n)"
    }
    return nil
}

// MARK: - Records

/// One record of a custom file: a JSON object (JSON Lines) or a row under a header (CSV, TSV).
struct CustomRecord {
    let file: String
    let line: Int
    let json: [String: Any]?
    let columns: [String: String]

    var isTabular: Bool { json == nil }

    func error(_ key: String?, _ message: String) -> ModelError {
        let what = key.map { isTabular ? "column \"\($0)\"" : "key \"\($0)\"" }
        return ModelError(file: file, field: ["line \(line)", what].compactMap { $0 }.joined(separator: ": "), message)
    }

    func has(_ key: String) -> Bool {
        if let json { return json[key].map { !isNull($0) } ?? false }
        return columns[key] != nil
    }

    /// A field as text: a string, or a JSON number or boolean written out. Empty cells are missing.
    func text(_ key: String) throws -> String {
        if let json {
            guard let v = json[key], !isNull(v) else { throw error(key, "missing key (the record has: \(json.keys.sorted().joined(separator: ", ")))") }
            guard !(v is [Any]), !(v is [String: Any]), let s = jsonScalarText(v) else { throw error(key, "expected a string, found \(describe(v))") }
            return s
        }
        guard let s = columns[key] else { throw error(key, "missing column (the header has: \(columns.keys.sorted().joined(separator: ", ")))") }
        guard !stripWhitespace(s).isEmpty else { throw error(key, "empty") }
        return s
    }

    /// A list of strings: a JSON array, or a single string (one item); for CSV/TSV, the columns
    /// `<key>1`, `<key>2`, ... when there is no `<key>` column.
    func list(_ key: String) throws -> [String] {
        if let json {
            guard let v = json[key], !isNull(v) else { throw error(key, "missing key (the record has: \(json.keys.sorted().joined(separator: ", ")))") }
            if let s = v as? String { return [s] }
            guard let a = v as? [Any], !a.isEmpty else { throw error(key, "expected a non-empty array of strings, found \(describe(v))") }
            return try a.enumerated().map { i, item in
                guard let s = item as? String else { throw error("\(key)[\(i)]", "expected a string, found \(describe(item))") }
                return s
            }
        }
        if columns[key] != nil { return [try text(key)] }
        var out: [String] = []
        while let s = columns["\(key)\(out.count + 1)"] {
            if stripWhitespace(s).isEmpty { break }   // fewer choices on this row than columns
            out.append(s)
        }
        guard !out.isEmpty else { throw error(key, "missing column \"\(key)\" (or \"\(key)1\", \"\(key)2\", ...)") }
        return out
    }
}

/// Throws at the first line that is not valid UTF-8: custom data is read strictly (a wrong
/// encoding would silently change the prompts).
func requireUTF8(_ bytes: [UInt8], file: String) throws {
    if bytes.allSatisfy({ $0 < 0x80 }) { return }
    for line in splitLines(bytes) where !line.bytes.allSatisfy({ $0 < 0x80 }) {
        if String(bytes: line.bytes, encoding: .utf8) == nil {
            let column = (line.bytes.firstIndex(where: { $0 >= 0x80 }) ?? line.bytes.startIndex) - line.bytes.startIndex + 1
            throw ModelError(file: file, field: "line \(line.number)",
                             "invalid UTF-8 (first non-ASCII byte at column \(column)); save the file as UTF-8")
        }
    }
}

/// CSV as RFC 4180 writes it: comma-separated, fields in double quotes may hold commas, quotes
/// ("" inside) and newlines. The first row is the header. Rows are numbered by their first line.
func readCSV(_ bytes: [UInt8], file: String) throws -> (columns: [String], rows: [(line: Int, fields: [String])]) {
    var records: [(line: Int, fields: [String])] = []
    var fields: [String] = [], field: [UInt8] = []
    var i = bytes.starts(with: [0xEF, 0xBB, 0xBF]) ? 3 : 0
    var line = 1, recordLine = 1, quoted = false, fieldStarted = false, afterQuote = false
    func endField() {
        fields.append(String(decoding: field, as: UTF8.self)); field = []; fieldStarted = false; afterQuote = false
    }
    func endRecord() {
        endField()
        if !(fields.count == 1 && fields[0].allSatisfy({ $0 == " " || $0 == "\t" || $0 == "\r" })) { records.append((recordLine, fields)) }
        fields = []
    }
    while i < bytes.count {
        let b = bytes[i]
        if quoted {
            if b == 0x22 {
                if i + 1 < bytes.count, bytes[i + 1] == 0x22 { field.append(0x22); i += 2; continue }
                quoted = false; afterQuote = true
            } else {
                if b == 0x0A { line += 1 }
                field.append(b)
            }
            i += 1; continue
        }
        switch b {
        case 0x2C: endField()
        case 0x0A:
            if field.last == 0x0D { field.removeLast() }
            endRecord(); line += 1; recordLine = line
        case 0x22 where !fieldStarted && field.isEmpty:
            quoted = true; fieldStarted = true
        default:
            if afterQuote && b != 0x0D {
                throw ModelError(file: file, field: "line \(line)", "text after a closing quote (a quote inside a quoted field is written \"\")")
            }
            field.append(b)
        }
        i += 1
    }
    if quoted { throw ModelError(file: file, field: "line \(recordLine)", "a quoted field is not closed before the end of the file") }
    if !field.isEmpty || !fields.isEmpty { if field.last == 0x0D { field.removeLast() }; endRecord() }
    guard let header = records.first else { throw ModelError(file: file, field: "file", "empty file: no header and no examples") }
    let columns = header.fields.map { stripWhitespace($0) }
    let rows = Array(records.dropFirst())
    for row in rows where row.fields.count != columns.count {
        throw ModelError(file: file, field: "line \(row.line)",
                         "expected \(columns.count) comma-separated fields (\(columns.joined(separator: ", "))), found \(row.fields.count)")
    }
    guard !rows.isEmpty else { throw ModelError(file: file, field: "file", "empty file: header only, no examples") }
    return (columns, rows)
}

/// The records of a custom data file, by extension: .jsonl (JSON Lines), .csv, .tsv.
func readCustomRecords(_ url: URL) throws -> [CustomRecord] {
    let bytes = try readFileBytes(url)
    try requireUTF8(bytes, file: url.path)
    func tabular(_ columns: [String], _ rows: [(line: Int, fields: [String])]) -> [CustomRecord] {
        rows.map { row in
            CustomRecord(file: url.path, line: row.line, json: nil,
                         columns: Dictionary(zip(columns, row.fields), uniquingKeysWith: { first, _ in first }))
        }
    }
    switch url.pathExtension.lowercased() {
    case "jsonl", "ndjson":
        return try readJSONLines(url).map { CustomRecord(file: url.path, line: $0.line ?? 0, json: $0.dict, columns: [:]) }
    case "csv":
        let table = try readCSV(bytes, file: url.path)
        return tabular(table.columns, table.rows)
    case "tsv", "tab":
        let table = try readTSV(url)
        return tabular(table.columns, table.rows)
    default:
        throw ModelError(file: url.path, field: "file", "unknown data file type \".\(url.pathExtension)\": expected .jsonl, .csv or .tsv")
    }
}

// MARK: - Examples

extension CustomTaskSpec {
    /// The shape: as stated, classification when labels are given, else from the first record.
    func resolvedShape(_ first: CustomRecord) throws -> CustomShape {
        if let shape { return shape }
        if labels != nil { return .classification }
        if first.has("choices") || first.has("choices1") || first.has("choice1") { return .multipleChoice }
        if first.has("completion") { return .generation }
        if first.has("label") {
            throw first.error(nil, "a classification record (it has \"label\"): give the label → verbalizer map, e.g. --labels '0= terrible,1= great'")
        }
        throw first.error(nil, "cannot tell the task's shape: records need label (with --labels), choices + answer, or completion")
    }

    /// Checks what the shape needs from the options, before any record is read.
    func checkOptions(_ shape: CustomShape, source: String) throws {
        switch shape {
        case .classification:
            guard labels != nil else { throw ModelError(file: source, field: "labels", "a classification task needs --labels (e.g. '0= terrible,1= great')") }
        case .multipleChoice, .generation:
            if labels != nil { throw ModelError(file: source, field: "labels", "--labels is for classification; this is a \(shape.rawValue) task") }
        }
    }

    /// One record as a task example (checked now, so a bad record anywhere fails the load).
    func example(_ r: CustomRecord, shape: CustomShape, template: PromptTemplate, id: String) throws -> TaskExample {
        let prompt = try template.render(r)
        switch shape {
        case .classification:
            let labels = self.labels!
            let value = stripWhitespace(try r.text("label"))
            guard let y = labels.firstIndex(where: { $0.label == value }) else {
                throw r.error("label", "\"\(value)\" is not in the label map (\(labels.map { "\"\($0.label)\"" }.joined(separator: ", ")))")
            }
            return TaskExample(id: id, candidates: MeZOTemplates.options(encoded: prompt, suffixes: labels.map(\.verbalizer)), label: y)
        case .multipleChoice:
            // JSON: a "choices" array; CSV/TSV: columns choices1, choices2, ... or choice1, choice2, ...
            let key = r.isTabular && !r.has("choices") && !r.has("choices1") && r.has("choice1") ? "choice" : "choices"
            let choices = try r.list(key).map { stripWhitespace($0) }
            guard choices.count >= 2 else { throw r.error("choices", "a multiple-choice record needs at least two choices, found \(choices.count)") }
            if let empty = choices.firstIndex(where: \.isEmpty) { throw r.error("choices[\(empty)]", "empty choice") }
            let answer = stripWhitespace(try r.text("answer"))
            let y: Int
            if let i = Int(answer) {
                guard choices.indices.contains(i) else { throw r.error("answer", "index \(i) is outside the \(choices.count) choices (answers count from 0)") }
                y = i
            } else if let i = choices.firstIndex(of: answer) {
                y = i
            } else {
                throw r.error("answer", "expected a choice index (from 0) or the text of a choice, found \"\(answer)\"")
            }
            // A choice follows the prompt after a space, unless the prompt ends in whitespace.
            let joined = prompt.last.map { $0.isWhitespace } ?? true
            return TaskExample(id: id, candidates: MeZOTemplates.options(encoded: prompt, suffixes: choices.map { joined ? $0 : " " + $0 }), label: y)
        case .generation:
            let answers = try r.list("completion").map { stripWhitespace($0) }
            if let empty = answers.firstIndex(where: \.isEmpty) { throw r.error(answers.count == 1 ? "completion" : "completion[\(empty)]", "empty completion") }
            return TaskExample(id: id, candidates: [], label: nil, prompt: stripSpaces(prompt), answers: answers)
        }
    }

    /// Reads and checks one file into pending examples.
    func read(_ url: URL) throws -> SourceFile {
        let records = try readCustomRecords(url)
        let shape = try resolvedShape(records[0])
        try checkOptions(shape, source: url.path)
        let template = try self.template ?? PromptTemplate(shape.defaultTemplate, source: url.path)
        let name = url.lastPathComponent
        let examples = try records.map { r -> PendingExample in
            let ex = try example(r, shape: shape, template: template, id: "\(name):\(r.line)")
            return PendingExample(id: ex.id) { ex }
        }
        return SourceFile(url: url, (examples, []))
    }
}

/// Loads a custom task and draws train / dev / test exactly as `loadTask` does for a built-in
/// task with the same files (same seed streams under `spec.name`).
public func loadCustomTask(_ spec: CustomTaskSpec, dataSeed: UInt64, counts: SplitCounts = SplitCounts()) throws -> TaskSplits {
    try counts.check(task: spec.name)
    let display: (URL) -> String = { $0.path }
    if let file = spec.file {
        guard spec.train == nil, spec.dev == nil, spec.test == nil else {
            throw ModelError(file: file.path, field: "task file", "give one data file, or separate train/dev/test files, not both")
        }
        return try drawSplits(task: spec.name, train: spec.read(file), validation: nil, display: display,
                              singleFileWhy: "one file", dataSeed: dataSeed, counts: counts)
    }
    guard let trainURL = spec.train else {
        throw ModelError(file: spec.name, field: "task file", "no data: give --task-file FILE, or --train-file with --test-file (and --dev-file)")
    }
    guard spec.dev != nil || spec.test != nil else {
        throw ModelError(file: trainURL.path, field: "test file", "a separate train file needs --test-file (or --dev-file) for dev and test")
    }
    let train = try spec.read(trainURL)
    if let dev = spec.dev, let test = spec.test {
        return try drawSplits(task: spec.name, train: train, validation: spec.read(dev), test: spec.read(test), display: display,
                              singleFileWhy: "", dataSeed: dataSeed, counts: counts)
    }
    return try drawSplits(task: spec.name, train: train, validation: spec.read((spec.test ?? spec.dev)!), display: display,
                          singleFileWhy: "", dataSeed: dataSeed, counts: counts)
}
