package org.tinysam.core

import java.io.File
import java.nio.ByteBuffer
import java.nio.ByteOrder

/** Reader of the golden vectors written by `tinysam-mobile golden` (format: tinysam_mobile/golden.py). */
class GoldenTensor(val dtype: Int, val shape: IntArray, private val data: ByteBuffer) {
    val size: Int get() = shape.fold(1) { a, b -> a * b }

    fun floats(): FloatArray { check(dtype == 0); return FloatArray(size).also { data.duplicate().order(ByteOrder.LITTLE_ENDIAN).asFloatBuffer().get(it) } }
    fun bytes(): ByteArray { check(dtype == 1); return ByteArray(size).also { data.duplicate().get(it) } }
    fun ints(): IntArray { check(dtype == 2); return IntArray(size).also { data.duplicate().order(ByteOrder.LITTLE_ENDIAN).asIntBuffer().get(it) } }
}

object Golden {
    private const val MAGIC = "TSGOLD01"

    val dir: File by lazy {
        val path = System.getProperty("tinysam.golden") ?: System.getenv("TINYSAM_GOLDEN")
            ?: error("set -Dtinysam.golden=DIR or TINYSAM_GOLDEN=DIR (write it with: tinysam-mobile golden --out DIR)")
        File(path).also { check(File(it, "index.txt").isFile) { "$it has no index.txt" } }
    }

    /** (case file name) of every case of a kind, in index order. */
    fun cases(kind: String): List<String> = File(dir, "index.txt").readLines()
        .map { it.trim().split(" ") }.filter { it.size == 2 && it[0] == kind }.map { it[1] }

    fun read(name: String): Map<String, GoldenTensor> {
        val buffer = ByteBuffer.wrap(File(dir, name).readBytes()).order(ByteOrder.LITTLE_ENDIAN)
        val magic = ByteArray(8).also { buffer.get(it) }
        check(String(magic, Charsets.US_ASCII) == MAGIC) { "$name is not a golden vector file" }
        val out = LinkedHashMap<String, GoldenTensor>()
        repeat(buffer.int) {
            val nameBytes = ByteArray(buffer.short.toInt() and 0xFFFF).also { buffer.get(it) }
            val dtype = buffer.get().toInt()
            val shape = IntArray(buffer.get().toInt()) { buffer.int }
            val itemSize = if (dtype == 1) 1 else 4
            val length = shape.fold(1) { a, b -> a * b } * itemSize
            val slice = buffer.slice().also { it.limit(length) }
            buffer.position(buffer.position() + length)
            out[String(nameBytes, Charsets.US_ASCII)] = GoldenTensor(dtype, shape, slice)
        }
        return out
    }
}
