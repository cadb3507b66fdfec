package org.tinysam.app

import android.content.res.AssetManager
import org.json.JSONObject
import java.io.FileInputStream
import java.nio.MappedByteBuffer
import java.nio.channels.FileChannel
import java.security.MessageDigest

/** A problem with the installed artifacts, worded for the person running the app. */
class ArtifactException(message: String) : Exception(message)

/** Integer tensor = round(float / scale) + zeroPoint, as the manifest lists it for w8a8 / w8a16 artifacts. */
class Quantization(val scale: Float, val zeroPoint: Int) {
    fun quantize(value: Float, min: Int, max: Int): Int =
        Math.max(min.toDouble(), Math.min(max.toDouble(), Math.rint((value / scale).toDouble()) + zeroPoint)).toInt()
    fun dequantize(code: Int): Float = (code - zeroPoint) * scale
}

/** Bytes per element of the tensor types this app feeds and reads. */
val DTYPE_BYTES = mapOf("float32" to 4, "int8" to 1, "int16" to 2)

/** One input or output of a signature as the manifest lists it: float32, or int8 / int16 with its quantization. */
class TensorSpec(val name: String, val shape: IntArray, val dtype: String, val quantization: Quantization?) {
    val elements: Int get() = shape.fold(1) { n, d -> n * d }
    val bytes: Int get() = elements * DTYPE_BYTES.getValue(dtype)
}

/** One LiteRT signature: inputs and outputs by signature name (e.g. "point_coords", "low_res_masks"). */
class Signature(val key: String, val inputs: Map<String, TensorSpec>, val outputs: Map<String, TensorSpec>) {
    fun input(name: String): TensorSpec = inputs[name]
        ?: throw ArtifactException("signature '$key' has no input '$name' (inputs: ${inputs.keys.joinToString()})")
    fun output(name: String): TensorSpec = outputs[name]
        ?: throw ArtifactException("signature '$key' has no output '$name' (outputs: ${outputs.keys.joinToString()})")
}

class Artifact(val file: String, val role: String, val signatures: Map<String, Signature>) {
    fun signature(key: String): Signature = signatures[key]
        ?: throw ArtifactException("$file has no signature '$key' (signatures: ${signatures.keys.joinToString()})")
}

/**
 * assets/tinysam/: manifest.json and the .tflite files it lists, as `tinysam-mobile install-artifacts
 * --app android` writes them. Checked at start-up: format version, target, every file's size and SHA-256.
 */
class ArtifactBundle private constructor(private val assets: AssetManager, manifest: JSONObject) {
    val imgSize: Int = manifest.getJSONObject("preprocessing").getInt("input_size")
    val precision: String = manifest.getString("precision")
    /**
     * The integer (w8a8, w8a16) decoders take the points' Fourier features (sin / cos have no integer
     * kernels): the (2, K) projection, row-major, with which the app computes them; null when the decoder
     * takes coordinates.
     */
    val pointFeatureMatrix: FloatArray? = manifest.optJSONObject("decoder")?.optJSONObject("point_features")?.let {
        val rows = it.getJSONArray("gaussian_matrix")
        val (x, y) = rows.getJSONArray(0) to rows.getJSONArray(1)
        FloatArray(2 * x.length()) { i -> (if (i < x.length()) x.getDouble(i) else y.getDouble(i - x.length())).toFloat() }
    }
    /**
     * The prompt-token counts the interactive decoder takes (prompt_tokens): every T from 1 (an empty point
     * list: the padding point alone) to its maximum, exactly; each has its own 'decode_tokens_T' signature.
     */
    val tokenCounts: IntRange = manifest.optJSONObject("prompt_tokens").let { tokens ->
        val min = tokens?.optInt("min", -1) ?: -1
        val max = tokens?.optInt("max", -1) ?: -1
        if (min != 1 || max < 3) {
            throw ArtifactException("manifest prompt_tokens must be {\"min\": 1, \"max\": 3 or more}, got $tokens; " +
                "convert again with the matching tinysam-mobile")
        }
        min..max
    }
    /** The most prompt tokens (points, then 2 box corners or 1 padding point) a prompt may have. */
    val maxTokens: Int get() = tokenCounts.last
    val artifacts: Map<String, Artifact>

    init {
        val list = manifest.getJSONArray("artifacts")
        artifacts = (0 until list.length()).map { parseArtifact(list.getJSONObject(it)) }.associateBy { it.role }
        for ((role, keys) in requiredSignatures(tokenCounts)) {
            val artifact = artifacts[role] ?: throw ArtifactException("manifest lists no '$role' artifact")
            keys.forEach { artifact.signature(it) }
        }
    }

    /** The .tflite file memory-mapped (it is stored uncompressed in the APK). */
    fun map(role: String): MappedByteBuffer {
        val descriptor = assets.openFd("$DIR/${artifacts.getValue(role).file}")
        FileInputStream(descriptor.fileDescriptor).use { stream ->
            return stream.channel.map(FileChannel.MapMode.READ_ONLY, descriptor.startOffset, descriptor.declaredLength)
        }
    }

    companion object {
        const val DIR = "tinysam"
        const val FORMAT_VERSION = 1
        /** The interactive decoder's signature for prompts of exactly [tokens] tokens (converters' token_signature). */
        fun tokenSignature(tokens: Int): String = "decode_tokens_$tokens"

        /**
         * convert --target tflite: encoder.tflite ('encode') and one decoder.tflite whose signatures share
         * weights: 'decode_tokens_T' for every T of prompt_tokens, and 'decode_batch' (everything mode).
         */
        fun requiredSignatures(tokenCounts: IntRange): Map<String, List<String>> = mapOf(
            "encoder" to listOf("encode"),
            "decoder" to tokenCounts.map { tokenSignature(it) } + "decode_batch")

        fun load(assets: AssetManager): ArtifactBundle {
            val text = try {
                assets.open("$DIR/manifest.json").bufferedReader().use { it.readText() }
            } catch (e: java.io.IOException) {
                throw ArtifactException("No TinySAM artifacts in the app. Run: tinysam-mobile convert --target tflite " +
                    "--out OUT, then tinysam-mobile install-artifacts OUT --app android, and rebuild.")
            }
            val manifest = try { JSONObject(text) } catch (e: org.json.JSONException) {
                throw ArtifactException("manifest.json is not valid JSON: ${e.message}")
            }
            val version = manifest.optInt("format_version", -1)
            if (version != FORMAT_VERSION) {
                throw ArtifactException("manifest format version $version; this app reads version $FORMAT_VERSION. " +
                    "Convert again with the matching tinysam-mobile.")
            }
            if (manifest.optString("target") != "tflite") {
                throw ArtifactException("the installed artifacts are for '${manifest.optString("target")}', this app runs 'tflite'")
            }
            val bundle = ArtifactBundle(assets, manifest)
            val records = manifest.getJSONArray("artifacts")
            for (i in 0 until records.length()) bundle.verify(records.getJSONObject(i))
            return bundle
        }

        private fun parseTensor(file: String, name: String, spec: JSONObject): TensorSpec {
            val shape = spec.getJSONArray("shape")
            val dtype = spec.getString("dtype")
            val quantization = spec.optJSONObject("quantization")?.let {
                Quantization(it.getDouble("scale").toFloat(), it.getInt("zero_point"))
            }
            if (dtype != "float32" && !(dtype in DTYPE_BYTES && quantization != null)) {
                throw ArtifactException("$file: tensor '$name' is $dtype; this app feeds float32 or quantized int8 / int16")
            }
            return TensorSpec(name, IntArray(shape.length()) { shape.getInt(it) }, dtype, quantization)
        }

        private fun parseArtifact(record: JSONObject): Artifact {
            val file = record.getString("file")
            fun tensors(specs: JSONObject) = specs.keys().asSequence().associateWith { parseTensor(file, it, specs.getJSONObject(it)) }
            val signatures = record.optJSONObject("signatures")?.let { all ->
                all.keys().asSequence().associateWith { key ->
                    val signature = all.getJSONObject(key)
                    Signature(key, tensors(signature.getJSONObject("inputs")), tensors(signature.getJSONObject("outputs")))
                }
            } ?: emptyMap()
            return Artifact(file, record.getString("role"), signatures)
        }
    }

    private fun verify(record: JSONObject) {
        val file = record.getString("file")
        val digest = MessageDigest.getInstance("SHA-256")
        var size = 0L
        try {
            assets.open("$DIR/$file").use { stream ->
                val buffer = ByteArray(1 shl 20)
                while (true) {
                    val n = stream.read(buffer)
                    if (n < 0) break
                    digest.update(buffer, 0, n)
                    size += n
                }
            }
        } catch (e: java.io.IOException) {
            throw ArtifactException("$file is listed in manifest.json but missing from the app's assets")
        }
        val sha = digest.digest().joinToString("") { "%02x".format(it) }
        if (size != record.getLong("size_bytes") || sha != record.getString("sha256")) {
            throw ArtifactException("$file does not match its manifest hash (modified or from another conversion); " +
                "install the artifacts again")
        }
    }
}
