import Foundation

extension TimeZone {
    /// China Standard Time (UTC+8, no daylight saving): the day every Kangyi report and date is in.
    public static let chinaStandard = TimeZone(identifier: "Asia/Shanghai")!
}

/// Calendar days as callers write them ("2026-11-20") and PostgreSQL reads them (`::date`).
public enum CalendarDay {
    /// The day in its one form, or nil when it is not a real day from 1900 to 2100.
    public static func parse(_ text: String) -> String? {
        let parts = text.split(separator: "-", omittingEmptySubsequences: false)
        guard parts.count == 3, parts[0].count == 4, parts[1].count == 2, parts[2].count == 2,
            parts.allSatisfy({ $0.utf8.allSatisfy { (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) } }),
            let year = Int(parts[0]), let month = Int(parts[1]), let day = Int(parts[2]), (1900...2100).contains(year),
            let date = calendar.date(from: DateComponents(year: year, month: month, day: day)),
            calendar.component(.month, from: date) == month, calendar.component(.day, from: date) == day
        else { return nil }
        return text
    }

    /// The day `date` falls on in China Standard Time.
    public static func of(_ date: Date) -> String {
        let parts = calendar.dateComponents([.year, .month, .day], from: date)
        return String(format: "%04d-%02d-%02d", parts.year!, parts.month!, parts.day!)
    }

    /// The moment a day begins in China Standard Time.
    public static func start(of day: String) -> Date? {
        guard parse(day) != nil else { return nil }
        let parts = day.split(separator: "-").compactMap { Int($0) }
        return calendar.date(from: DateComponents(year: parts[0], month: parts[1], day: parts[2]))
    }

    private static let calendar: Calendar = {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = .chinaStandard
        return calendar
    }()
}
