import KangyiPlatform
import Testing

/// `partitioningIndex` finds the first element of the second partition, at every boundary.
@Suite struct PartitioningTests {
    @Test func findsTheFirstElementPastTheThreshold() {
        let values = [1, 2, 2, 2, 5, 8]
        #expect(values.partitioningIndex { $0 > 2 } == 4)
        #expect(values.partitioningIndex { $0 >= 2 } == 1)
        #expect(values.partitioningIndex { $0 > 0 } == 0)
        #expect(values.partitioningIndex { $0 > 8 } == values.endIndex)
        #expect([Int]().partitioningIndex { $0 > 0 } == 0)
        #expect(values[2...].partitioningIndex { $0 >= 2 } == 2)  // a slice keeps its indices
        let range: ClosedRange<Int64> = -5...5
        #expect(range[range.partitioningIndex { $0 * $0 <= 4 && $0 >= 0 || $0 > 2 }] == 0)
    }
}
