package org.tinysam.app

import android.content.res.AssetManager
import org.json.JSONObject
import java.io.FileInputStream
import java.nio.MappedByteBuffer
import java.nio.channels.FileChannel
import java.security.MessageDigest

/** A problem with the installed artifacts, worded for the person running the app. */
class ArtifactException(message: String) : Exception(message)

/** One tensor of an artifact as the manifest lists it. */
class TensorSpec(val name: String, val shape: IntArray)

class Artifact(val file: String, val role: String, val inputs: List<TensorSpec>, val outputs: List<TensorSpec>) {
    fun input(name: String): TensorSpec = inputs.firstOrNull { it.name == name }
        ?: throw ArtifactException("$file has no input '$name' (inputs: ${inputs.joinToString { it.name }})")
}

/**
 * assets/tinysam/: manifest.json and the .tflite files it lists, as `tinysam-mobile install-artifacts
 * --app android` writes them. Checked at start-up: format version, target, every file's size and SHA-256.
 */
class ArtifactBundle private constructor(private val assets: AssetManager, manifest: JSONObject) {
    val imgSize: Int = manifest.getJSONObject("preprocessing").getInt("input_size")
    val numPoints: Int = manifest.getInt("num_points")
    val everythingBatch: Int = manifest.getInt("everything_batch")
    val precision: String = manifest.getString("precision")
    val artifacts: Map<String, Artifact>

    init {
        val list = manifest.getJSONArray("artifacts")
        artifacts = (0 until list.length()).map { parseArtifact(list.getJSONObject(it)) }.associateBy { it.role }
        for (role in REQUIRED_ROLES) if (role !in artifacts) throw ArtifactException("manifest lists no '$role' artifact")
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
        val REQUIRED_ROLES = listOf("encoder", "decoder", "decoder_batch")

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

        private fun parseArtifact(record: JSONObject): Artifact {
            fun specs(key: String) = record.optJSONArray(key)?.let { array ->
                (0 until array.length()).map { i ->
                    val spec = array.getJSONObject(i)
                    val shape = spec.getJSONArray("shape")
                    TensorSpec(spec.getString("name"), IntArray(shape.length()) { shape.getInt(it) })
                }
            } ?: emptyList()
            return Artifact(record.getString("file"), record.getString("role"), specs("inputs"), specs("outputs"))
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
