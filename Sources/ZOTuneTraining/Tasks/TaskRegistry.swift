import Foundation
import ZOTuneModels

/// The tasks ZOTune reads in their original formats (MeZO's suite, plus WinoGrande and the
/// movie-review snippets).
public enum TaskName: String, CaseIterable, Sendable {
    case sst2, movies, rte, cb, boolq, wsc, wic, multirc, copa, record, winogrande, squad, drop

    /// Case-insensitive ("SST2", "ReCoRD", ...); "sst-2" is accepted too.
    public init?(caseInsensitive name: String) {
        let key = name.lowercased().replacingOccurrences(of: "-", with: "")
        guard let t = TaskName(rawValue: key) else { return nil }
        self = t
    }

    /// SQuAD and DROP: prompt + gold answers; the others score candidates.
    public var isGeneration: Bool { self == .squad || self == .drop }

    /// Directory names under --data-dir that hold this task (compared case-insensitively).
    var directoryNames: [String] {
        switch self {
        case .sst2: return ["sst-2", "sst2"]
        case .movies: return ["movies", "moviereviews", "movie_reviews", "vader", "vadersentiment", "hutto_icwsm_2014"]
        case .squad: return ["squad", "squad1.1", "squad-v1.1", "squad_v1.1"]
        case .drop: return ["drop", "drop_dataset"]
        default: return [rawValue]
        }
    }

    /// Train-split files, relative to the task directory, in order of preference.
    var trainFiles: [String] {
        switch self {
        case .sst2: return ["train.tsv"]
        case .movies: return []
        case .boolq, .record: return ["train.jsonl", "FewGLUE/train.jsonl"]
        case .winogrande: return ["train.jsonl", "train_xl.jsonl", "train_l.jsonl", "train_m.jsonl", "train_s.jsonl", "train_xs.jsonl"]
        case .squad: return ["train-v1.1.json"]
        case .drop: return ["drop_dataset_train.json"]
        default: return ["train.jsonl"]
        }
    }

    /// Validation-split files (the test split's labels are not public).
    var validationFiles: [String] {
        switch self {
        case .sst2: return ["dev.tsv"]
        case .movies: return []
        case .record: return ["val.jsonl", "dev.jsonl", "FewGLUE_32dev/dev32.jsonl"]
        case .squad: return ["dev-v1.1.json"]
        case .drop: return ["drop_dataset_dev.json"]
        default: return ["val.jsonl", "dev.jsonl"]
        }
    }
}

/// Where a task's files were found.
struct TaskSources {
    var train: URL?
    var validation: URL?
}

private func isDirectory(_ url: URL) -> Bool {
    var d: ObjCBool = false
    return FileManager.default.fileExists(atPath: url.path, isDirectory: &d) && d.boolValue
}

private func isFile(_ url: URL) -> Bool {
    var d: ObjCBool = false
    return FileManager.default.fileExists(atPath: url.path, isDirectory: &d) && !d.boolValue
}

/// Task directories under `dataDir` (case-insensitive names, in alias order), then `dataDir`.
private func candidateRoots(_ task: TaskName, _ dataDir: URL) -> [URL] {
    let entries = (try? FileManager.default.contentsOfDirectory(atPath: dataDir.path)) ?? []
    var roots: [URL] = []
    for alias in task.directoryNames {
        for e in entries.sorted() where e.lowercased() == alias {
            let u = dataDir.appendingPathComponent(e)
            if isDirectory(u) { roots.append(u) }
        }
    }
    return roots + [dataDir]
}

/// Finds the task's train and validation files: `<dataDir>/<TaskDir>/<file>` or files directly
/// in `dataDir`. Both come from the first directory that has either, never mixed.
func locateTaskFiles(_ task: TaskName, dataDir: URL) throws -> TaskSources {
    guard isDirectory(dataDir) else {
        throw ModelError(file: dataDir.path, field: "--data-dir", "not a directory")
    }
    if task == .movies { return TaskSources(train: try locateMovieSnippets(dataDir), validation: nil) }
    var looked: [String] = []
    for root in candidateRoots(task, dataDir) {
        let train = task.trainFiles.map { root.appendingPathComponent($0) }.first(where: isFile)
        let validation = task.validationFiles.map { root.appendingPathComponent($0) }.first(where: isFile)
        if train != nil || validation != nil { return TaskSources(train: train, validation: validation) }
        looked += (task.trainFiles + task.validationFiles).map { root.appendingPathComponent($0).path }
    }
    let expected = dataDir.appendingPathComponent(defaultDirectoryName(task)).appendingPathComponent(task.trainFiles.first ?? "")
    throw ModelError(file: expected.path, field: "task \(task.rawValue)",
                     "no data file found; looked for: \(looked.joined(separator: ", "))")
}

private func defaultDirectoryName(_ task: TaskName) -> String {
    switch task {
    case .sst2: return "SST-2"
    case .movies: return "movies"
    case .rte: return "RTE"
    case .cb: return "CB"
    case .boolq: return "BoolQ"
    case .wsc: return "WSC"
    case .wic: return "WiC"
    case .multirc: return "MultiRC"
    case .copa: return "COPA"
    case .record: return "ReCoRD"
    case .winogrande: return "WinoGrande"
    case .squad: return "SQuAD"
    case .drop: return "DROP"
    }
}

/// The snippets file by name anywhere up to 4 levels under `dataDir`, else hutto_ICWSM_2014.tar.gz,
/// else the vaderSentiment sdist (vaderSentiment-*.tar.gz); shallowest first.
func locateMovieSnippets(_ dataDir: URL) throws -> URL {
    var found: [(rank: Int, depth: Int, path: String)] = []
    var queue: [(URL, Int)] = [(dataDir, 0)]
    var visited = 0
    while !queue.isEmpty, visited < 20_000 {
        let (dir, depth) = queue.removeFirst()
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: dir.path) else { continue }
        for e in entries.sorted() {
            visited += 1
            let u = dir.appendingPathComponent(e)
            if isDirectory(u) {
                if depth < 4 { queue.append((u, depth + 1)) }
                continue
            }
            let rank: Int
            if e == movieSnippetsFileName { rank = 0 }
            else if e == movieInnerArchiveName { rank = 1 }
            else if e.hasPrefix("vaderSentiment") && e.hasSuffix(".tar.gz") { rank = 2 }
            else { continue }
            found.append((rank, depth, u.path))
        }
    }
    guard let best = found.min(by: { ($0.rank, $0.depth, $0.path) < ($1.rank, $1.depth, $1.path) }) else {
        throw ModelError(file: dataDir.appendingPathComponent("movies").appendingPathComponent(movieSnippetsFileName).path,
                         field: "task movies",
                         "no \(movieSnippetsFileName), \(movieInnerArchiveName) or vaderSentiment-*.tar.gz found under \(dataDir.path) " +
                         "(get it with: pip download --no-deps --no-binary :all: vaderSentiment)")
    }
    return URL(fileURLWithPath: best.path)
}

/// `url` relative to `dir` when inside it, for notes.
private func display(_ url: URL, _ dir: URL) -> String {
    let base = dir.standardizedFileURL.path, path = url.standardizedFileURL.path
    return path.hasPrefix(base + "/") ? String(path.dropFirst(base.count + 1)) : path
}

/// What a source file is, when it is not the full split.
private func sourceRemark(_ path: String) -> String {
    if path.hasSuffix("FewGLUE/train.jsonl") { return " (FewGLUE: 32-example subset of train)" }
    if path.hasSuffix("FewGLUE_32dev/dev32.jsonl") { return " (FewGLUE_32dev: 32 examples from unused train, standing in for validation)" }
    return ""
}

/// Loads a task and draws train / dev / test as in MeZO: `trainCount` examples from the original
/// train split, `devCount` + `testCount` disjoint examples from the original validation split,
/// all chosen by `dataSeed` (SplitMix64 + Fisher–Yates, one stream per source file).
///
/// When the train file is absent (e.g. SQuAD, WinoGrande) or the validation file is absent
/// (e.g. SST-2 without dev.tsv, or the movie snippets' single file), all three splits come from
/// the one file there is, disjoint. A file too small for what is asked of it gives counts scaled
/// down in proportion (test first, then train, then dev get any remainder). `notes` says what
/// was drawn from where.
public func loadTask(_ name: String, dataDir: URL, dataSeed: UInt64, trainCount: Int = 1000,
                     devCount: Int = 500, testCount: Int = 1000) throws -> TaskSplits {
    guard let task = TaskName(caseInsensitive: name) else {
        throw ModelError(file: name, field: "task", "unknown task; known tasks: \(TaskName.allCases.map(\.rawValue).joined(separator: ", "))")
    }
    let counts = SplitCounts(train: trainCount, dev: devCount, test: testCount)
    try counts.check(task: name)
    let sources = try locateTaskFiles(task, dataDir: dataDir)
    let train = try sources.train.map { url in SourceFile(url: url, try readPending(task, at: url, split: .train)) }
    let validation = try sources.validation.map { url in SourceFile(url: url, try readPending(task, at: url, split: .validation)) }
    let why = task == .movies ? "single file" : (train == nil ? "no train file" : "no validation file")
    return try drawSplits(task: task.rawValue, train: train, validation: validation, display: { display($0, dataDir) },
                          singleFileWhy: why, dataSeed: dataSeed, counts: counts)
}

/// How many examples each split asks for.
public struct SplitCounts: Sendable {
    public var train: Int, dev: Int, test: Int
    public init(train: Int = 1000, dev: Int = 500, test: Int = 1000) {
        (self.train, self.dev, self.test) = (train, dev, test)
    }

    func check(task: String) throws {
        for (label, n) in [("train", train), ("dev", dev), ("test", test)] where n < 0 {
            throw ModelError(file: task, field: "\(label) count", "must be 0 or more, found \(n)")
        }
    }
}

/// One read and checked source file, with what reading it reported.
struct SourceFile {
    let url: URL
    let examples: [PendingExample]
    let notes: [String]

    init(url: URL, _ read: (examples: [PendingExample], notes: [String])) {
        (self.url, examples, notes) = (url, read.examples, read.notes)
    }
}

/// The draw every task uses (built-in or custom), MeZO's: `train` examples from the train file;
/// dev and test disjoint from the validation file, or dev from `validation` and test from `test`
/// when there is a separate test file; all three disjoint from the one file there is otherwise.
/// Each file is shuffled by its own stream, `"<task>/<role>"` under the data seed.
func drawSplits(task: String, train: SourceFile?, validation: SourceFile?, test: SourceFile? = nil,
                display: (URL) -> String, singleFileWhy: String, dataSeed: UInt64, counts: SplitCounts) throws -> TaskSplits {
    try counts.check(task: task)
    let (trainCount, devCount, testCount) = (counts.train, counts.dev, counts.test)
    var notes = (train?.notes ?? []) + (validation?.notes ?? []) + (test?.notes ?? [])

    /// Draws `counts` disjoint runs from one source's examples, in the order given, and renders them.
    func draw(_ examples: [PendingExample], source: String, _ counts: [Int]) -> [[TaskExample]] {
        let order = seededPermutation(count: examples.count, seed: sourceSeed(dataSeed: dataSeed, source: "\(task)/\(source)"))
        var runs: [[TaskExample]] = [], at = 0
        for n in counts {
            runs.append(order[at..<(at + n)].map { examples[$0].render() })
            at += n
        }
        return runs
    }
    func drawn(_ n: Int, _ requested: Int, of file: SourceFile) -> String {
        let path = display(file.url)
        return "\(n) of \(file.examples.count) from \(path)\(sourceRemark(path))" + (n == requested ? "" : " (\(requested) requested; file too small)")
    }

    var trainSplit: [TaskExample] = [], devSplit: [TaskExample] = [], testSplit: [TaskExample] = []
    switch (train, validation, test) {
    case let (t?, v?, s?):
        let nTrain = min(trainCount, t.examples.count), nDev = min(devCount, v.examples.count), nTest = min(testCount, s.examples.count)
        trainSplit = draw(t.examples, source: "train", [nTrain])[0]
        devSplit = draw(v.examples, source: "validation", [nDev])[0]
        testSplit = draw(s.examples, source: "test", [nTest])[0]
        notes.append("train: " + drawn(nTrain, trainCount, of: t))
        notes.append("dev: " + drawn(nDev, devCount, of: v))
        notes.append("test: " + drawn(nTest, testCount, of: s))
    case let (t?, v?, nil):
        let nTrain = min(trainCount, t.examples.count)
        trainSplit = draw(t.examples, source: "train", [nTrain])[0]
        notes.append("train: " + drawn(nTrain, trainCount, of: t))
        let fit = fitCounts([testCount, devCount], available: v.examples.count)
        let runs = draw(v.examples, source: "validation", fit)
        (testSplit, devSplit) = (runs[0], runs[1])
        let vPath = display(v.url)
        notes.append("dev/test: \(fit[1]) + \(fit[0]) of \(v.examples.count) from \(vPath)\(sourceRemark(vPath))" +
                     (fit == [testCount, devCount] ? "" : " (\(devCount) + \(testCount) requested; file too small)"))
    default:
        // One source file: all three splits from it, disjoint.
        guard let only = train ?? validation ?? test else {
            throw ModelError(file: task, field: "task \(task)", "no data file found")
        }
        let source = train != nil ? "train" : (validation != nil ? "validation" : "test")
        let fit = fitCounts([testCount, trainCount, devCount], available: only.examples.count)
        let runs = draw(only.examples, source: source, fit)
        (testSplit, trainSplit, devSplit) = (runs[0], runs[1], runs[2])
        let path = display(only.url)
        notes.append("train/dev/test: \(fit[1]) + \(fit[2]) + \(fit[0]) of \(only.examples.count) from \(path)\(sourceRemark(path)) " +
                     "(\(singleFileWhy): all three drawn from it, disjoint)" +
                     (fit == [testCount, trainCount, devCount] ? "" : " (\(trainCount) + \(devCount) + \(testCount) requested; file too small)"))
    }
    notes.append("sampled with data seed \(dataSeed) (SplitMix64, Fisher–Yates)")
    return TaskSplits(task: task, train: trainSplit, dev: devSplit, test: testSplit, notes: notes)
}
