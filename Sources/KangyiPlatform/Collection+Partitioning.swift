extension RandomAccessCollection {
    /// The first index whose element satisfies `belongsInSecondPartition`, by binary search — the
    /// collection must hold every element that does not before every element that does (sorted values
    /// against a threshold). `endIndex` when none does.
    @inlinable
    public func partitioningIndex(where belongsInSecondPartition: (Element) throws -> Bool) rethrows -> Index {
        var low = startIndex
        var count = self.count
        while count > 0 {
            let half = count / 2
            let middle = index(low, offsetBy: half)
            if try belongsInSecondPartition(self[middle]) {
                count = half
            } else {
                low = index(after: middle)
                count -= half + 1
            }
        }
        return low
    }
}
