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
    ///
    /// Since 1992 (China's last daylight-saving summer was 1991) that is plain arithmetic on UTC+8, done
    /// here without Calendar and String(format:): ingest asks it for every row, and the Calendar path cost
    /// 15 % of the price-watch server's CPU. Earlier moments take the time-zone database's path.
    public static func of(_ date: Date) -> String {
        let seconds = date.timeIntervalSince1970
        guard seconds >= fixedOffsetSince, seconds < 4_102_444_800 else {
            let parts = calendar.dateComponents([.year, .month, .day], from: date)
            return String(format: "%04d-%02d-%02d", parts.year!, parts.month!, parts.day!)
        }
        let (year, month, day) = civil(daysSince1970: Int(((seconds + 8 * 3_600) / 86_400).rounded(.down)))
        func twoDigits(_ n: Int) -> String { n < 10 ? "0" + String(n) : String(n) }
        return String(year) + "-" + twoDigits(month) + "-" + twoDigits(day)
    }

    /// The proleptic Gregorian date `days` after 1970-01-01 (Howard Hinnant's civil_from_days).
    static func civil(daysSince1970: Int) -> (year: Int, month: Int, day: Int) {
        let days = daysSince1970 + 719_468
        let era = (days >= 0 ? days : days - 146_096) / 146_097
        let dayOfEra = days - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1_460 + dayOfEra / 36_524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let shiftedMonth = (5 * dayOfYear + 2) / 153
        let day = dayOfYear - (153 * shiftedMonth + 2) / 5 + 1
        let month = shiftedMonth < 10 ? shiftedMonth + 3 : shiftedMonth - 9
        return (yearOfEra + era * 400 + (month <= 2 ? 1 : 0), month, day)
    }

    /// 1992-01-01T00:00+08:00: from here on China Standard Time is UTC+8 all year.
    static let fixedOffsetSince: TimeInterval = 694_195_200

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
